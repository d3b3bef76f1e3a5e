"""The seed examples, written the way course code writes them, with ``import needle as ndl``.

Seed 001: fit y = x^2 + 2x + 1 with a small MLP trained by hand-written SGD.
Seed 002: softmax loss from ops, and one epoch of a two-layer network on MNIST.
"""
import numpy as np
import pytest

import needle as ndl


# ---- seed 001: fitting a quadratic ---------------------------------------------------------------
def test_mse_gradient_hand_computed():
    # preds = X @ W + b = [0.5, 1.0]; residuals [-0.5, -2.0]
    X = ndl.Tensor(np.array([[1.0], [2.0]]), requires_grad=False)
    Y = ndl.Tensor(np.array([[1.0], [3.0]]), requires_grad=False)
    W = ndl.Tensor(np.array([[0.5]]))
    b = ndl.Tensor(np.array([[0.0]]))
    loss = ((X @ W + b - Y) ** 2).sum() / 2
    np.testing.assert_allclose(loss.numpy(), 2.125, rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(W.grad.numpy(), [[-4.5]], rtol=1e-6)   # mean(2 r x)
    np.testing.assert_allclose(b.grad.numpy(), [[-2.5]], rtol=1e-6)   # mean(2 r)


class _Linear:
    """y = x @ W + b, Kaiming-uniform weight, zero bias (as the seed's layer)."""

    def __init__(self, fan_in, fan_out):
        self.weight = ndl.init.kaiming_uniform(fan_in, fan_out, requires_grad=True)
        self.bias = ndl.init.zeros(1, fan_out, requires_grad=True)

    def __call__(self, x):
        return x @ self.weight + self.bias  # the bias broadcasts over the batch

    def parameters(self):
        return [self.weight, self.bias]


def test_fit_quadratic_with_small_mlp():
    np.random.seed(0)
    X = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(-1, 1)  # float32, as parameters are
    Y = X ** 2 + 2 * X + 1
    layers = [_Linear(1, 16), _Linear(16, 16), _Linear(16, 1)]
    params = [p for layer in layers for p in layer.parameters()]
    x, y = ndl.Tensor(X, requires_grad=False), ndl.Tensor(Y, requires_grad=False)

    losses = []
    for _ in range(250):
        h = ndl.relu(layers[0](x))
        h = ndl.relu(layers[1](h))
        pred = layers[2](h)
        loss = ((pred - y) ** 2).sum() / X.shape[0]
        loss.backward()
        for p in params:
            p.data = p.data - 0.05 * p.grad.data
        losses.append(float(loss.numpy()))
    assert losses[-1] < 0.01 < losses[0]
    assert all(p.is_leaf() for p in params)  # updates did not grow the graph
    test = ndl.Tensor(np.array([[0.5]], dtype=np.float32), requires_grad=False)
    prediction = layers[2](ndl.relu(layers[1](ndl.relu(layers[0](test))))).numpy()
    assert abs(prediction.item() - 2.25) < 0.2


# ---- seed 002: softmax loss and a two-layer network ----------------------------------------------
def softmax_loss(Z, y_one_hot):
    """Mean over the batch of log(sum(exp(z))) - z[y], from Tensor ops."""
    log_sum_exp = ndl.ops.log(ndl.ops.summation(ndl.ops.exp(Z), axes=(1,)))
    picked = ndl.ops.summation(Z * y_one_hot)
    return (ndl.ops.summation(log_sum_exp) - picked) / Z.shape[0]


def _one_hot(labels, k):
    out = np.zeros((labels.shape[0], k), dtype=np.float32)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


def test_softmax_loss_hand_computed_and_vs_numpy():
    Z = ndl.Tensor(np.zeros((1, 2), np.float32))
    np.testing.assert_allclose(softmax_loss(Z, ndl.Tensor(_one_hot(np.array([0]), 2))).numpy(), np.log(2.0),
                               rtol=1e-6)
    rng = np.random.RandomState(0)
    z = rng.randn(50, 10).astype(np.float32)
    y = rng.randint(0, 10, 50)
    expected = np.mean(np.log(np.exp(z.astype(np.float64)).sum(1)) - z[np.arange(50), y])
    got = softmax_loss(ndl.Tensor(z), ndl.Tensor(_one_hot(y, 10), requires_grad=False))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    # and its gradient: (softmax - one_hot) / batch
    Zt = ndl.Tensor(z)
    softmax_loss(Zt, ndl.Tensor(_one_hot(y, 10), requires_grad=False)).backward()
    e = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(Zt.grad.numpy(), (e / e.sum(1, keepdims=True) - _one_hot(y, 10)) / 50, atol=1e-6)


def nn_epoch(X, y, W1, W2, lr=0.1, batch=100):
    """One SGD epoch of the network relu(X W1) W2 with softmax loss, in order, course style."""
    for i in range(X.shape[0] // batch + 1):
        start, end = i * batch, min((i + 1) * batch, X.shape[0])
        if end == start:
            break
        Xb = ndl.Tensor(X[start:end], requires_grad=False)
        Z = ndl.ops.relu(Xb @ W1) @ W2
        y_one_hot = ndl.Tensor(_one_hot(y[start:end], Z.shape[1]), requires_grad=False)
        loss = softmax_loss(Z, y_one_hot)
        loss.backward()
        W1.data = W1.data - lr * ndl.Tensor(W1.grad.numpy().astype(np.float32))
        W2.data = W2.data - lr * ndl.Tensor(W2.grad.numpy().astype(np.float32))
    return W1, W2


def _numpy_step(X, y, W1, W2, lr):
    """The same SGD step with hand-derived gradients, in float64 numpy."""
    X, W1, W2 = (a.astype(np.float64) for a in (X, W1, W2))
    A1 = np.maximum(X @ W1, 0)
    Z = A1 @ W2
    S = np.exp(Z - Z.max(1, keepdims=True))
    G2 = (S / S.sum(1, keepdims=True) - _one_hot(y, W2.shape[1])) / X.shape[0]
    G1 = (A1 > 0) * (G2 @ W2.T)
    return W1 - lr * (X.T @ G1), W2 - lr * (A1.T @ G2)


def _init_weights(n, hidden, k):
    np.random.seed(0)
    # Cast last: under NumPy 2, float32 array / np.float64 scalar is float64.
    W1 = (np.random.randn(n, hidden) / np.sqrt(hidden)).astype(np.float32)
    W2 = (np.random.randn(hidden, k) / np.sqrt(k)).astype(np.float32)
    return W1, W2


@pytest.fixture(scope="module")
def shuffled_mnist(mnist):
    # The bundled files are sorted by digit; an in-order epoch needs them shuffled.
    X, y, X_test, y_test = mnist
    perm = np.random.RandomState(1).permutation(X.shape[0])
    return X[perm], y[perm], X_test, y_test


def test_nn_epoch_first_batch_matches_numpy(shuffled_mnist):
    X, y, _, _ = shuffled_mnist
    W1_np, W2_np = _init_weights(X.shape[1], 100, 10)
    W1, W2 = ndl.Tensor(W1_np), ndl.Tensor(W2_np)
    nn_epoch(X[:100], y[:100], W1, W2, lr=0.2, batch=100)
    W1_ref, W2_ref = _numpy_step(X[:100], y[:100], W1_np, W2_np, 0.2)
    assert np.abs(W2_ref - W2_np).max() > 1e-3  # the step really moved the weights
    np.testing.assert_allclose(W1.numpy(), W1_ref, atol=1e-5)
    np.testing.assert_allclose(W2.numpy(), W2_ref, atol=1e-5)


def test_nn_epoch_on_mnist_learns(shuffled_mnist):
    X, y, X_test, y_test = shuffled_mnist
    assert X.shape == (4000, 784) and X_test.shape == (1000, 784)
    W1_np, W2_np = _init_weights(X.shape[1], 100, 10)
    W1, W2 = ndl.Tensor(W1_np), ndl.Tensor(W2_np)
    W1, W2 = nn_epoch(X, y, W1, W2, lr=0.2, batch=100)
    assert W1.is_leaf() and W2.is_leaf()

    def accuracy(images, labels):
        logits = np.maximum(images @ W1.numpy(), 0) @ W2.numpy()
        return float((logits.argmax(1) == labels).mean())

    assert accuracy(X, y) > 0.8
    assert accuracy(X_test, y_test) > 0.8
    loss = softmax_loss(ndl.relu(ndl.Tensor(X_test) @ W1) @ W2, ndl.Tensor(_one_hot(y_test, 10)))
    assert float(loss.numpy()) < 0.7
