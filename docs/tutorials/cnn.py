# %% [markdown]
# # A convolutional network
#
# A small CNN on the bundled MNIST images: two `Conv -> BatchNorm2d -> ReLU -> MaxPool2d` stages
# and a linear head. Convolutions take NCHW tensors, so each flat 784-pixel image is reshaped to
# `(1, 28, 28)`. To keep the site build short this trains three epochs on 1,000 images with the numpy
# backend; `examples/cnn_mnist.py` trains the full model (97.9% test accuracy) on a native backend.

# %%
import matplotlib.pyplot as plt
import numpy as np

import needle as ndl
import needle.data as data
import needle.nn as nn
import needle.optim as optim

np.random.seed(0)
ndl.manual_seed(0)
paths = data.mnist_paths()
images, labels = data.parse_mnist(paths["train_images"], paths["train_labels"])
test_images, test_labels = data.parse_mnist(paths["test_images"], paths["test_labels"])
# The bundled files are sorted by digit: take a random subset of each split.
pick, test_pick = np.random.permutation(len(labels))[:1000], np.random.permutation(len(test_labels))[:500]
train_set = data.NDArrayDataset(images[pick].reshape(-1, 1, 28, 28), labels[pick])
test_set = data.NDArrayDataset(test_images[test_pick].reshape(-1, 1, 28, 28), test_labels[test_pick])
print("a training batch element:", train_set[0][0].shape)

# %%
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),    # 28 -> 14
            nn.Conv(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 10))

    def forward(self, x):
        return self.head(self.features(x))


model = SmallCNN()
print(sum(int(np.prod(p.shape)) for p in model.parameters()), "parameters")

# %%
loss_fn = nn.SoftmaxLoss()
opt = optim.Adam(model.parameters(), lr=2e-3)
losses = []
model.train()
for _epoch in range(3):
    for x, y in data.DataLoader(train_set, batch_size=32, shuffle=True):
        loss = loss_fn(model(x), y)
        opt.reset_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
print(f"{len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}")

model.eval()
correct = 0
for x, y in data.DataLoader(test_set, batch_size=250):
    correct += int((model(x).numpy().argmax(axis=1) == y.numpy()).sum())
print(f"test accuracy after 3 epochs on 1,000 images: {correct / len(test_set):.1%}")

# %%
fig, (ax, ax_filters) = plt.subplots(1, 2, figsize=(9, 3), gridspec_kw={"width_ratios": [2, 1]})
ax.plot(losses)
ax.set(xlabel="step", ylabel="loss", title="training loss")
ax.grid(alpha=0.3)
weights = model.features.modules[0].weight.numpy()  # (kernel, kernel, in, out)
ax_filters.imshow(np.hstack([weights[:, :, 0, k] for k in range(weights.shape[-1])]), cmap="gray")
ax_filters.set(title="first-layer filters")
ax_filters.axis("off")
fig.tight_layout()
