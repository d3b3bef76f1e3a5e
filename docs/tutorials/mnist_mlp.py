# %% [markdown]
# # Train an MLP on MNIST
#
# A two-layer perceptron on the 4,000 training and 1,000 test images of MNIST that ship with
# needle-data: load the data, build the model, train it for three epochs with Adam and plot the
# curves. Everything here runs on the `numpy` backend in a few seconds; pass `device=ndl.cpu()`
# (needle-cpu) or `ndl.cuda()` to run it on a native backend.

# %%
import matplotlib.pyplot as plt
import numpy as np

import needle as ndl
import needle.data as data
import needle.nn as nn
import needle.optim as optim

np.random.seed(0)
ndl.manual_seed(0)
device = ndl.default_device()
paths = data.mnist_paths()
train_set = data.MNISTDataset(paths["train_images"], paths["train_labels"])
test_set = data.MNISTDataset(paths["test_images"], paths["test_labels"])
print(f"{len(train_set)} training images, {len(test_set)} test images, device {device}")
image, label = train_set[0]
print("one image:", image.shape, "label:", label)

# %% [markdown]
# `DataLoader` batches the dataset and turns each batch into tensors on `device`.
# The model flattens each 28x28 image into 784 features.

# %%
train_loader = data.DataLoader(train_set, batch_size=64, shuffle=True, device=device)
test_loader = data.DataLoader(test_set, batch_size=500, device=device)
model = nn.Sequential(
    nn.Flatten(),
    nn.Linear(784, 128, device=device),
    nn.ReLU(),
    nn.Linear(128, 10, device=device),
)
loss_fn = nn.SoftmaxLoss()
opt = optim.Adam(model.parameters(), lr=1e-3)
print(model)

# %% [markdown]
# One epoch: forward, loss, `backward()`, `step()`; then the same pass without gradients on
# the test set.

# %%
def run_epoch(loader, train):
    model.train() if train else model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        logits = model(x)
        loss = loss_fn(logits, y)
        if train:
            opt.reset_grad()
            loss.backward()
            opt.step()
        total_loss += loss.item() * x.shape[0]
        correct += int((logits.numpy().argmax(axis=1) == y.numpy()).sum())
        seen += x.shape[0]
    return total_loss / seen, correct / seen


history = []
for epoch in range(1, 4):
    train_loss, train_acc = run_epoch(train_loader, train=True)
    test_loss, test_acc = run_epoch(test_loader, train=False)
    history.append((train_loss, test_loss, train_acc, test_acc))
    print(f"epoch {epoch}: train loss {train_loss:.3f} acc {train_acc:.3f} | test loss {test_loss:.3f} "
          f"acc {test_acc:.3f}")

# %%
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(8, 3))
epochs = range(1, len(history) + 1)
ax_loss.plot(epochs, [h[0] for h in history], "o-", label="train")
ax_loss.plot(epochs, [h[1] for h in history], "o-", label="test")
ax_loss.set(xlabel="epoch", title="loss")
ax_acc.plot(epochs, [h[2] for h in history], "o-", label="train")
ax_acc.plot(epochs, [h[3] for h in history], "o-", label="test")
ax_acc.set(xlabel="epoch", title="accuracy")
for ax in (ax_loss, ax_acc):
    ax.legend()
    ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# Save the weights with `nn.save` and load them back into a fresh model with `nn.load`.

# %%
nn.save(model.state_dict(), "mlp.npz")
restored = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
restored.load_state_dict(nn.load("mlp.npz"))
restored.eval()
x, y = next(iter(test_loader))
agree = (restored(x).numpy().argmax(axis=1) == model(x).numpy().argmax(axis=1)).mean()
print(f"restored model agrees with the trained one on {agree:.0%} of a test batch")
