"""needle.viz: the dot text parses and its nodes and edges are the graph's (checked against the
graph walked by hand); render's formats and errors."""
import builtins
import re

import numpy as np
import pytest

import needle as ndl
from needle import viz

_NODE = re.compile(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)", class=(\w+),.*\];$')
_EDGE = re.compile(r"^\s*(n\d+) -> (n\d+);$")


def _parse(dot):
    """A small parser of what to_dot writes: {node: (label lines, kind)} and the list of edges."""
    lines = dot.strip().splitlines()
    assert lines[0] == "digraph needle {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if (m := _NODE.match(line)):
            nodes[m[1]] = (m[2].replace('\\"', '"').split("\\n"), m[3])
        elif (m := _EDGE.match(line)):
            edges.append((m[1], m[2]))
        else:
            assert re.match(r"^\s*(rankdir|node|edge)\b", line), line
    return nodes, edges


def _graph():
    x = ndl.Tensor(np.ones((4, 3), dtype=np.float32), requires_grad=False)
    w = ndl.Tensor(np.ones((3, 2), dtype=np.float32))
    h = x @ w
    out = (h * h).sum()  # h used twice: two edges
    return x, w, h, out


def test_nodes_and_edges_match_the_graph():
    x, w, h, out = _graph()
    nodes, edges = _parse(viz.to_dot(out))
    assert len(nodes) == 5  # x, w, h, h*h, sum
    by_head = {}
    for name, (label, kind) in nodes.items():
        head = label[0].split(" (")[0] if kind == "op" else label[0]  # an op's name without its settings
        by_head.setdefault(head, []).append((name, label, kind))
    (xn, xl, xk), = by_head["constant"]
    (wn, wl, wk), = by_head["leaf (requires grad)"]
    (hn, hl, hk), = by_head["MatMul"]
    (mn, _, _), = by_head["EWiseMul"]
    (sn, sl, _), = by_head["Summation"]
    assert (xl[1], xk, wl[1], wk, hl[1], hk, sl[1]) == ("(4, 3)", "leaf", "(3, 2)", "param", "(4, 2)", "op", "()")
    assert sorted(edges) == sorted([(xn, hn), (wn, hn), (hn, mn), (hn, mn), (mn, sn)])


def test_verbose_adds_dtype_and_device_and_parameters_are_named():
    x, w, h, out = _graph()
    nodes, _ = _parse(viz.to_dot(h, verbose=True))
    labels = {tuple(label) for label, _ in nodes.values()}
    dev = repr(x.device)
    assert ("MatMul", "(4, 2)", f"float32 on {dev}") in labels
    assert ("constant", "(4, 3)", f"float32 on {dev}") in labels
    Parameter = type("Parameter", (ndl.Tensor,), {})  # drawn by class name: core does not import nn
    p = Parameter(np.ones(3, dtype=np.float32))
    nodes, _ = _parse(viz.to_dot(p * 2.0))
    assert {(label[0], kind) for label, kind in nodes.values()} == {("Parameter", "param"),
                                                                   ("MulScalar (scalar=2.0)", "op")}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pyparsing, inside pydot
def test_pydot_parses_it_when_installed():
    pydot = pytest.importorskip("pydot")
    x, w, h, out = _graph()
    graph, = pydot.graph_from_dot_data(viz.to_dot(out, verbose=True))
    assert len(graph.get_nodes()) - sum(n.get_name() in ("node", "edge") for n in graph.get_nodes()) == 5
    assert len(graph.get_edges()) == 5


def test_render_dot_and_bad_extension(tmp_path):
    _, _, _, out = _graph()
    path = tmp_path / "g.dot"
    assert viz.render(out, path) == path
    assert path.read_text() == viz.to_dot(out)
    with pytest.raises(ValueError, match=r"extension must be one of \.dot, \.svg, \.png, got '\.jpg'"):
        viz.render(out, tmp_path / "g.jpg")
    with pytest.raises(ValueError, match="got 'none'"):
        viz.render(out, tmp_path / "g")
    with pytest.raises(TypeError, match="expected a needle Tensor"):
        viz.to_dot(np.ones(3))


def test_render_without_graphviz_names_both_dependencies(tmp_path, monkeypatch):
    _, _, _, out = _graph()
    real_import = builtins.__import__

    def no_graphviz(name, *args, **kwargs):
        if name == "graphviz":
            raise ImportError("No module named 'graphviz'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_graphviz)
    with pytest.raises(ImportError, match=r"graphviz Python package.*pip install.*dot program.*apt-get install"):
        viz.render(out, tmp_path / "g.svg")
    monkeypatch.undo()
    pytest.importorskip("graphviz")
    monkeypatch.setattr(viz.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match=r"dot program, which is not on PATH.*pip install"):
        viz.render(out, tmp_path / "g.png")


def test_render_svg_and_png_when_graphviz_is_installed(tmp_path):
    pytest.importorskip("graphviz")
    if viz.shutil.which("dot") is None:
        pytest.skip("the Graphviz dot program is not installed")
    _, _, _, out = _graph()
    viz.render(out, tmp_path / "g.svg")
    assert "<svg" in (tmp_path / "g.svg").read_text()
    viz.render(out, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
