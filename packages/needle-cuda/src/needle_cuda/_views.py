"""Host-side view arithmetic: which elements a (shape, strides, offset) view touches.

CuPy builds a view over raw device memory without bounds checks, so every strided kernel
checks here first, on the host, in O(ndim): a wrong view is a ValueError naming the view,
never an out-of-bounds read on the GPU.
"""


def byte_strides(strides, itemsize):
    """Element strides as byte strides (what ``cupy.ndarray`` takes)."""
    return tuple(int(s) * itemsize for s in strides)


def view_extent(shape, strides, offset):
    """``(lowest, highest)`` flat index the view reaches, or None when the view is empty."""
    if any(int(d) == 0 for d in shape):
        return None
    low = high = int(offset)
    for dim, stride in zip(shape, strides):
        reach = (int(dim) - 1) * int(stride)
        if reach > 0:
            high += reach
        else:
            low += reach
    return low, high


def check_view(buffer_size, shape, strides, offset, what="view"):
    """Raise ValueError unless the view lies inside a buffer of ``buffer_size`` elements."""
    if len(shape) != len(strides):
        raise ValueError(f"{what}: shape {tuple(shape)} and strides {tuple(strides)} differ in length")
    if any(int(d) < 0 for d in shape):
        raise ValueError(f"{what}: shape {tuple(shape)} has a negative dimension")
    extent = view_extent(shape, strides, offset)
    if extent is not None and (extent[0] < 0 or extent[1] >= buffer_size):
        raise ValueError(f"{what}: shape {tuple(shape)}, strides {tuple(strides)}, offset {offset} reach "
                         f"elements {extent[0]}..{extent[1]}, outside the buffer of {buffer_size} elements")
