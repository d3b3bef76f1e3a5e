// Fused softmax cross-entropy with integer class labels (the protocol's softmax_xent_forward /
// softmax_xent_backward) on compact float32 buffers. The composed loss makes some fourteen passes
// over the (m, k) logits and four more to build a one-hot; here the forward reads the logits once
// and writes the softmax once, the backward reads the softmax once and writes the gradient once.
#pragma once
#include <cstdint>

namespace needle_cpu {

// Reads the m float labels once, each into classes[r] as an int64 class index; returns the index
// of the first that is not an integer in [0, k) (classes then partly written), or -1. The kernels
// below index rows with `classes`: a private snapshot, so another thread writing the labels
// buffer between the check and the kernel cannot move a write outside `out`.
std::int64_t labels_to_classes(const float* labels, std::int64_t m, std::int64_t k, std::int64_t* classes);

// For each row r of the compact (m, k) logits z, with mx = max(z[r]) and s = sum(exp(z[r] - mx)):
// probs[r] = exp(z[r] - mx) * (1 / s) and loss_rows[r] = log(s) - (z[r][labels[r]] - mx). Working
// on z - mx keeps the log-sum term next to a large max (|z| ~ 1e7, or rows at -3e38). The exp, max
// and sums are the elementwise kernels' (the active ISA's, as accurate as the composed ops').
void softmax_xent_forward(const float* z, const std::int64_t* classes, float* probs, float* loss_rows, std::int64_t m,
                          std::int64_t k);

// out = (probs - onehot(classes)) * scale over the (m, k) softmax probs (classes checked).
void softmax_xent_backward(const float* probs, const std::int64_t* classes, float scale, float* out, std::int64_t m,
                           std::int64_t k);

}  // namespace needle_cpu
