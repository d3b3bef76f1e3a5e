// Fused softmax cross-entropy with integer class labels (the protocol's softmax_xent_forward /
// softmax_xent_backward) on compact float32 buffers. The composed loss makes some fourteen passes
// over the (m, k) logits and four more to build a one-hot; here the forward reads the logits once
// and writes the softmax once, the backward reads the softmax once and writes the gradient once.
#pragma once
#include <cstdint>

namespace needle_cpu {

// Index of the first of the m labels that is not an integer in [0, k), or -1 when all are class
// indices. The kernels below index rows with the labels, so callers check them with this first.
std::int64_t first_bad_label(const float* labels, std::int64_t m, std::int64_t k);

// For each row r of the compact (m, k) logits z, with mx = max(z[r]) and s = sum(exp(z[r] - mx)):
// probs[r] = exp(z[r] - mx) * (1 / s) and loss_rows[r] = log(s) - (z[r][labels[r]] - mx). Working
// on z - mx keeps the log-sum term next to a large max (|z| ~ 1e7, or rows at -3e38). The exp, max
// and sums are the elementwise kernels' (the active ISA's, as accurate as the composed ops').
void softmax_xent_forward(const float* z, const float* labels, float* probs, float* loss_rows, std::int64_t m,
                          std::int64_t k);

// out = (probs - onehot(labels)) * scale over the (m, k) softmax probs (labels checked).
void softmax_xent_backward(const float* probs, const float* labels, float scale, float* out, std::int64_t m,
                           std::int64_t k);

}  // namespace needle_cpu
