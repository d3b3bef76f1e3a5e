"""Reductions over contiguous groups, and the row gather/scatter kernels of integer indexing.

A reduction sees a compact buffer as ``(out.size, reduce_size)`` rows and reduces each row (one
CuPy reduction kernel). ``gather_rows``/``scatter_add_rows`` check their indexes on the device and
read back one scalar (the position of the first bad index, or "none"), never the indexes.
"""
from . import _cupy
from ._elementwise import _wrapping
from ._transfers import count as count_transfer

cp = _cupy.cp


def _groups(a, out, reduce_size):
    return a.array[: out.size * reduce_size].reshape(out.size, reduce_size)


def reduce_sum(a, out, reduce_size):
    """Sum over contiguous groups of ``reduce_size`` elements; 0 for empty groups. Integers wrap (summed
    in the unsigned type of their width, whose overflow is defined)."""
    if out.size == 0:
        return
    if reduce_size == 0:
        out.array.fill(0)
        return
    groups, target = _groups(a, out, reduce_size), out.array
    if target.dtype.kind in "iu":
        groups, target = _wrapping(groups), _wrapping(target)
        cp().sum(groups, axis=1, dtype=target.dtype, out=target)
    else:
        cp().sum(groups, axis=1, out=target)


def _extreme(name):
    def kernel(a, out, reduce_size):
        if out.size == 0:
            return
        if reduce_size == 0:
            raise ValueError(f"reduce_{name}: zero-size reduction has no {name}imum")
        getattr(cp(), f"a{name}")(_groups(a, out, reduce_size), axis=1, out=out.array)
    kernel.__doc__ = (f"{name.capitalize()}imum over contiguous groups of ``reduce_size`` elements (a NaN in a group "
                      f"gives NaN; on bool, {'any' if name == 'max' else 'all'}).")
    return kernel


reduce_max = _extreme("max")
reduce_min = _extreme("min")


def _arg_extreme(name):
    def kernel(a, out, reduce_size):
        if out.size == 0:
            return
        if reduce_size == 0:
            raise ValueError(f"reduce_arg{name}: zero-size reduction has no arg{name}")
        groups, xp = _groups(a, out, reduce_size), cp()
        if groups.dtype.kind != "f":
            getattr(xp, f"arg{name}")(groups, axis=1, out=out.array)  # ties keep the lowest index
            return
        # CuPy's float argmax keeps *a* NaN of a row, not always the first: mark the first extreme
        # ourselves. A row holding a NaN has a NaN extreme, equal to nothing, so only its NaNs are marked.
        extreme = getattr(xp, f"a{name}")(groups, axis=1, keepdims=True)
        marked = xp.logical_or(groups == extreme, xp.isnan(groups))
        xp.argmax(marked, axis=1, out=out.array)
    kernel.__doc__ = (f"Index (int64) in each contiguous group of ``reduce_size`` of its first {name}imum; the first "
                      "NaN wins, as in numpy.")
    return kernel


reduce_argmax = _arg_extreme("max")
reduce_argmin = _arg_extreme("min")


# ---- integer indexing of rows ---------------------------------------------------------------------------
def _check_rows(what, idx, rows, row_size, count, data, out):
    """Sizes and dtypes on the host, then every index in [0, rows) with one scalar read back.

    ``data`` and ``out`` are ``(name, buffer, elements needed)``.
    """
    if idx.dtype != "int64":
        raise TypeError(f"{what}: idx must be an int64 buffer, got {idx.dtype}")
    if data[1].dtype != out[1].dtype:
        raise TypeError(f"{what}: {data[0]} and {out[0]} differ in dtype ({data[1].dtype} and {out[1].dtype})")
    for name, buf, need in (("idx", idx, count), data, out):
        if buf.size < need:
            raise ValueError(f"{what}: buffer {name} has {buf.size} elements, {need} needed "
                             f"(rows={rows}, row_size={row_size}, count={count})")
    if count == 0:
        return
    xp, ix = cp(), idx.array[:count]
    bad = xp.empty(count + 1, dtype=bool)
    xp.logical_or(ix < 0, ix >= rows, out=bad[:count])
    bad[count] = True  # a sentinel: argmax is count when every index is good
    first = int(bad.argmax())
    count_transfer("d2h", 8)
    if first < count:
        raise IndexError(f"{what}: index {int(ix[first])} at position {first} is out of range for {rows} rows")


def gather_rows(a, idx, out, rows, row_size, count):
    """out row i = a row idx[i] for i < count (a holds ``rows`` rows of ``row_size``); IndexError for a bad index."""
    _check_rows("gather_rows", idx, rows, row_size, count, ("a", a, rows * row_size), ("out", out, count * row_size))
    if count == 0 or row_size == 0:
        return
    table = a.array[: rows * row_size].reshape(rows, row_size)
    cp().take(table, idx.array[:count], axis=0, out=out.array[: count * row_size].reshape(count, row_size))


def scatter_add_rows(g, idx, out, rows, row_size, count):
    """out row idx[i] += g row i for i < count (repeated indexes accumulate; out is not cleared first).

    Atomic adds exist for float32/float64 and 32/64-bit unsigned integers: int32/int64 add on their
    unsigned view (the same bits), uint8 through a uint32 copy of ``out``. Not defined on bool.
    """
    if out.dtype == "bool":
        raise TypeError("scatter_add_rows: not defined on bool buffers (core adds bool as logical or)")
    _check_rows("scatter_add_rows", idx, rows, row_size, count, ("g", g, count * row_size),
                ("out", out, rows * row_size))
    if count == 0 or row_size == 0:
        return
    xp = cp()
    target = out.array[: rows * row_size].reshape(rows, row_size)
    values = g.array[: count * row_size].reshape(count, row_size)
    index = idx.array[:count]
    if target.dtype.name == "uint8":
        wide = target.astype("uint32")
        xp.add.at(wide, index, values.astype("uint32"))
        xp.copyto(target, wide, casting="unsafe")  # the low 8 bits: the sum modulo 256
    else:
        xp.add.at(_wrapping(target), index, _wrapping(values))
