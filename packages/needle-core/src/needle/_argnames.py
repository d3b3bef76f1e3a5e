"""One argument under several names: the course's (``axes``, ``keepdims``) and PyTorch's (``dim``,
``keepdim``) or numpy's (``axis``).

A function takes every spelling with the default :data:`UNSET` and calls :func:`one_of`, which
returns the one given (or the default) and rejects two spellings of the same argument, so that
``summation(a, axes=0, dim=1)`` is an error instead of a silent choice.

This module imports nothing from needle: every layer may use it.
"""


class _Unset:
    """The default of an argument that has several spellings: "not given"."""

    __slots__ = ()

    def __repr__(self):
        return "<not given>"

    def __reduce__(self):
        return "UNSET"


#: The default of each spelling: distinguishes "not given" from an explicit None or False.
UNSET = _Unset()


def one_of(who, default, **spellings):
    """The value of the one spelling in ``spellings`` that is not :data:`UNSET`, else ``default``.

    ``who`` names the function in the error raised when two spellings are given (a TypeError
    naming both, as Python's own "got multiple values for argument").
    """
    found = None
    for name, value in spellings.items():
        if value is UNSET:
            continue
        if found is not None:
            raise TypeError(f"{who}: got both {found[0]}= and {name}=, which name the same argument; "
                            f"give one of {', '.join(n + '=' for n in spellings)}")
        found = (name, value)
    return default if found is None else found[1]


def axes_and_keepdims(who, keepdims, keepdim, **axis_spellings):
    """``(axes, keepdims)`` of a reduction from the spellings of its axes (``axes``/``axis``/``dim``,
    as keyword arguments, all UNSET meaning None: every axis) and of ``keepdims``/``keepdim``."""
    axes = None
    if any(value is not UNSET for value in axis_spellings.values()):
        axes = one_of(who, None, **axis_spellings)
    if keepdim is UNSET:
        keepdims = False if keepdims is UNSET else keepdims
    else:
        keepdims = one_of(who, False, keepdims=keepdims, keepdim=keepdim)
    return axes, bool(keepdims)
