# docs: mpiexec -n 2
# %% [markdown]
# # Distributed training on 2 ranks
#
# `needle.distributed` (needle-dist) trains one model in several processes: each rank works on
# its share of every global batch, `DistributedDataParallel` averages the gradients over the
# ranks after each backward, and metrics are all-reduced so that every rank sees the same figures.
# This page was built by running the script under `mpiexec -n 2` (MPI on this machine, loopback
# only); the output shown is rank 0's. Run it yourself with
# `mpiexec -n 2 python docs/tutorials/distributed.py` or
# `python -m needle.distributed.launch -n 2 docs/tutorials/distributed.py`; without a launcher it
# runs as a world of one rank.

# %%
import numpy as np

import needle.data as data
import needle.distributed as dist
import needle.nn as nn
import needle.optim as optim

dist.init()
print(f"rank {dist.rank()} of {dist.world_size()} over {dist.backend()}")
ranks = dist.all_reduce_sum(np.array([dist.rank() + 1.0]))
print(f"all-reduce of (rank + 1) over the ranks: {ranks[0]:.0f}")

# %% [markdown]
# Every rank builds the model; `DistributedDataParallel` broadcasts rank 0's weights, so the
# ranks start equal whatever their seeds. `DistributedDataLoader` gives each rank a disjoint
# share of a shuffled order that all ranks agree on (`set_epoch` changes it every epoch).

# %%
np.random.seed(dist.rank())  # different on purpose: DDP makes the weights equal
model = dist.DistributedDataParallel(nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)))
paths = data.mnist_paths()
train_set = data.MNISTDataset(paths["train_images"], paths["train_labels"])
test_set = data.MNISTDataset(paths["test_images"], paths["test_labels"])
train_loader = dist.DistributedDataLoader(train_set, batch_size=64, seed=0)   # 64 per rank
test_loader = dist.DistributedDataLoader(test_set, batch_size=500, shuffle=False)
opt = optim.Adam(model.parameters(), lr=2e-3)
loss_fn = nn.SoftmaxLoss()
print(f"{len(train_loader)} steps per epoch on each rank (global batch {64 * dist.world_size()})")

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
            model.all_reduce_gradients()  # averaged over the ranks
            opt.step()
        total_loss += loss.item() * x.shape[0]
        correct += int((logits.numpy().argmax(axis=1) == y.numpy()).sum())
        seen += x.shape[0]
    loss_sum, correct_sum, seen_sum = dist.all_reduce_sum(np.array([total_loss, correct, seen]))
    return loss_sum / seen_sum, correct_sum / seen_sum


for epoch in range(1, 3):
    train_loader.set_epoch(epoch)
    train_loss, train_acc = run_epoch(train_loader, train=True)
    test_loss, test_acc = run_epoch(test_loader, train=False)
    if dist.is_main():
        print(f"epoch {epoch}: train loss {train_loss:.3f} acc {train_acc:.3f} | test acc {test_acc:.3f}")

# %% [markdown]
# The ranks still hold identical weights after training (checked here by all-reducing a
# checksum), and `save_on_main` writes one checkpoint from rank 0 while the others wait.

# %%
checksum = float(sum(p.numpy().sum() for p in model.parameters()))
spread = dist.all_reduce_sum(np.array([checksum, checksum ** 2]))
print(f"weights equal on every rank: {np.isclose(spread[1] * dist.world_size(), spread[0] ** 2)}")
dist.save_on_main(model.state_dict(), "distributed_mlp.npz")
print("checkpoint written by rank 0")
