"""NDArrayDataset: samples are rows of equally long arrays."""
import numpy as np

from ..data_basic import Dataset


def _as_numpy(a):
    # needle Tensors and NDArrays expose .numpy(); lists and numpy arrays go through np.asarray.
    return a.numpy() if hasattr(a, "numpy") and not isinstance(a, np.ndarray) else np.asarray(a)


class NDArrayDataset(Dataset):
    """``NDArrayDataset(*arrays)``: sample ``i`` is ``tuple(a[i] for a in arrays)``.

    All arrays must have the same length on their first axis. Index arrays and slices work too and
    return the stacked rows, so :class:`DataLoader` gathers batches in one step.
    """

    supports_array_index = True

    def __init__(self, *arrays):
        super().__init__(None)
        if not arrays:
            raise ValueError("NDArrayDataset: needs at least one array")
        self.arrays = tuple(_as_numpy(a) for a in arrays)
        for k, a in enumerate(self.arrays):
            if a.ndim == 0:
                raise ValueError(f"NDArrayDataset: array {k} is 0-d (a scalar); every array needs a first axis")
        lengths = [a.shape[0] for a in self.arrays]
        if len(set(lengths)) > 1:
            raise ValueError(f"NDArrayDataset: arrays must have the same first dimension, got lengths {lengths}")

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)
