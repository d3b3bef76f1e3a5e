// Fused batch normalisation in training mode (the protocol's batchnorm_forward / batchnorm_backward)
// on compact float32 (m, c) buffers: rows are samples (N*H*W of an NHWC activation), columns channels.
// The composed graph makes some twenty passes and as many Python ops each way; these make three
// (forward: sum, squared deviations, output) and two (backward: two sums, output).
#pragma once
#include <cstdint>

namespace needle_cpu {

// mean[j] = sum_r x[r][j] / m, var[j] = sum_r (x[r][j] - mean[j])^2 / m (two passes, double sums),
// out[r][j] = (x[r][j] - mean[j]) * (weight[j] / sqrt(var[j] + eps)) + bias[j]. m >= 1.
void batchnorm_forward(const float* x, const float* weight, const float* bias, float* out, float* mean, float* var,
                       std::int64_t m, std::int64_t c, double eps);

// With xhat = (x - mean) / sqrt(var + eps) and g the output gradient: grad_bias = sum_r g,
// grad_weight = sum_r g * xhat, grad_x = weight / sqrt(var + eps) * (g - grad_bias / m - xhat * grad_weight / m).
void batchnorm_backward(const float* x, const float* g, const float* weight, const float* mean, const float* var,
                        float* grad_x, float* grad_weight, float* grad_bias, std::int64_t m, std::int64_t c,
                        double eps);

}  // namespace needle_cpu
