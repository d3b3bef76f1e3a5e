"""Draw the computational graph behind a tensor with Graphviz: what backward will walk.

``to_dot(tensor)`` gives the graph as Graphviz dot text (no dependency); ``render(tensor, path)``
writes it as ``.dot``, or as ``.svg``/``.png`` through the ``graphviz`` Python package and the
Graphviz ``dot`` program (``pip install needle-core[viz]`` plus the system package).

Each tensor is one node: an op node shows its op and shape; a leaf is drawn apart, as a
parameter (a leaf that requires grad) or a constant; the tensor drawn is outlined in bold.
Each input of an op is one edge, from the input to the op's output (in data-flow order, the
reverse of backward's sweep).
"""
import os
import shutil

from .autograd import TensorTuple, find_topo_sort

__all__ = ["to_dot", "render", "FORMATS"]

#: The file extensions :func:`render` writes.
FORMATS = (".dot", ".svg", ".png")

_INSTALL = ("install the graphviz Python package (pip install 'needle-core[viz]' or pip install graphviz) "
            "and the Graphviz dot program (apt-get install graphviz, brew install graphviz or "
            "conda install graphviz)")

_STYLE = {
    "op": 'shape=box, style="rounded,filled", fillcolor="#dbe9f6", color="#4a78a8"',
    "param": 'shape=box, style=filled, fillcolor="#fde7b0", color="#b8860b"',
    "leaf": 'shape=ellipse, style=filled, fillcolor="#eeeeee", color="#888888"',
}


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _op_name(op):
    name = type(op).__name__
    # Scalar settings make an op readable (``AddScalar 2.0``, ``Summation axes=(1,)``).
    settings = [f"{k}={v!r}" for k, v in sorted(vars(op).items())
                if not k.startswith("_") and isinstance(v, (bool, int, float, str, tuple)) and len(repr(v)) <= 24]
    return name + (" (" + ", ".join(settings) + ")" if settings else "")


def _kind(node):
    if not node.is_leaf():
        return "op"
    if node.requires_grad or type(node).__name__ == "Parameter":
        return "param"
    return "leaf"


def _shape(node):
    if isinstance(node, TensorTuple):
        return f"tuple of {len(node)}"
    return "(" + ", ".join(str(d) for d in node.shape) + ("," if len(node.shape) == 1 else "") + ")"


def _label(node, kind, verbose):
    head = {"op": _op_name(node.op) if kind == "op" else "",
            "param": type(node).__name__ if type(node).__name__ == "Parameter" else "leaf (requires grad)",
            "leaf": "constant"}[kind]
    lines = [head, _shape(node)]
    if verbose:
        data = node.realize_cached_data()
        if isinstance(node, TensorTuple):
            lines.append(", ".join(sorted({a.dtype for a in data})) or "empty")
        else:
            lines.append(f"{node.dtype} on {node.device!r}")
    return "\n".join(lines)


def to_dot(tensor, verbose=False):
    """The graph that produced ``tensor`` in Graphviz dot syntax.

    One node per tensor (op name and shape; with ``verbose``, dtype and device too), one edge per
    input of each op (an input used twice gives two edges). Parameters (leaves that require
    grad) and constants are drawn apart from op results.
    """
    if not hasattr(tensor, "inputs") or not hasattr(tensor, "realize_cached_data"):
        raise TypeError(f"to_dot: expected a needle Tensor, got {type(tensor).__name__}")
    order = find_topo_sort([tensor])
    ids = {id(node): f"n{i}" for i, node in enumerate(order)}
    lines = ["digraph needle {",
             "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=11];',
             '  edge [color="#555555", arrowsize=0.7];']
    for node in order:
        kind = _kind(node)
        style = _STYLE[kind] + (", penwidth=2.5" if node is tensor else "")
        lines.append(f"  {ids[id(node)]} [label={_quote(_label(node, kind, verbose))}, class={kind}, {style}];")
    for node in order:
        for inp in node.inputs:
            lines.append(f"  {ids[id(inp)]} -> {ids[id(node)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor, path, verbose=False):
    """Write the graph of ``tensor`` to ``path``: ``.dot`` (text, no dependency), ``.svg`` or ``.png``
    (through the graphviz package and the dot program). Returns ``path``."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"render: cannot write {str(path)!r}: the extension must be one of {', '.join(FORMATS)}, "
                         f"got {ext or 'none'!r}")
    dot = to_dot(tensor, verbose=verbose)
    if ext == ".dot":
        with open(path, "w", encoding="utf-8") as f:
            f.write(dot)
        return path
    try:
        import graphviz
    except ImportError:
        raise ImportError(f"render: writing {ext} needs the graphviz Python package, which is not installed: "
                          f"{_INSTALL}; or write .dot, which needs neither") from None
    if shutil.which("dot") is None:
        raise RuntimeError(f"render: writing {ext} needs the Graphviz dot program, which is not on PATH: "
                           f"{_INSTALL}; or write .dot, which needs neither")
    image = graphviz.Source(dot).pipe(format=ext[1:])
    with open(path, "wb") as f:
        f.write(image)
    return path
