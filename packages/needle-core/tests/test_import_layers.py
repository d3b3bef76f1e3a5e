"""needle-core's modules import each other one way (ARCHITECTURE.md, "Inside needle-core imports
run one way"): the import statements of every module, read with ``ast``, form no cycle.

Every import counts, at module level or inside a function (a function-level import only hides
a cycle from ``import needle``; the modules still depend on each other). ``from pkg import x``
is an import of the module ``pkg.x`` when there is one, else of ``pkg``. A module-level import of
``a.b.c`` also runs ``a/b/__init__.py`` first, so it is an import of the package ``a.b`` too
(unless the importer is inside ``a.b``: that package is then already being imported).
"""
import ast
import sys
from pathlib import Path

import needle

ROOT = Path(needle.__file__).parent  # needle-core's own files (needle-nn and others extend the package)

# The tensor layer: Tensor's methods call the ops and the ops subclass TensorOp; the one cycle
# allowed, and only among these modules.
TENSOR_LAYER = ("needle.autograd", "needle.ops")

# The device layer, bottom to top: each module may import only those before it.
DEVICE_LAYERS = ["needle._hookspecs", "needle._builtin_plugin", "needle._registry", "needle._device", "needle.backends",
                 "needle.backend_ndarray.ndarray", "needle.backend_ndarray"]


def _module_name(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules():
    """{module name: (path, is_package)} for every needle-core module."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "__pycache__" not in path.parts:
            found[_module_name(path)] = (path, path.name == "__init__.py")
    return found


class _Imports(ast.NodeVisitor):
    """(target module name, line, deferred) for each import; deferred = inside a function."""

    def __init__(self, name, is_package):
        self.package = name if is_package else name.rpartition(".")[0]
        self.found, self._depth = [], 0

    def _function(self, node):
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node):
        for alias in node.names:
            self.found.append((alias.name, [alias.name], node.lineno, self._depth > 0))

    def visit_ImportFrom(self, node):
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        self.found.append((base, [f"{base}.{alias.name}" for alias in node.names], node.lineno, self._depth > 0))


def _ancestors(name):
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph():
    """{importer: {imported: "file:line (module-level|function-level)"}} among needle-core modules."""
    modules = _modules()
    graph = {name: {} for name in modules}
    for name, (path, is_package) in modules.items():
        visitor = _Imports(name, is_package)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for base, candidates, line, deferred in visitor.found:
            targets = {c for c in candidates if c in modules} or ({base} if base in modules else set())
            where = f"{path.relative_to(ROOT.parent)}:{line} ({'function' if deferred else 'module'}-level)"
            for target in targets:
                reached = [target]
                if not deferred:  # the packages on the way run their __init__ first
                    reached += [p for p in _ancestors(target) if p != name and p not in _ancestors(name)]
                for module in reached:
                    if module != name and module in modules:
                        graph[name].setdefault(module, where)
    return graph


def strongly_connected(graph):
    """Tarjan's components with more than one module (iterative: no recursion limit)."""
    index, low, on_stack, stack, result, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        result.append(component)
    return result


def a_cycle(graph, component):
    """One cycle through ``component``'s smallest module, each step with the import that makes it."""
    start = min(component)
    paths, queue = {start: []}, [start]
    while queue:  # breadth-first inside the component: the shortest way back to start
        node = queue.pop(0)
        for nxt, where in sorted(graph[node].items()):
            if nxt not in component:
                continue
            if nxt == start:
                steps = paths[node] + [(node, nxt, where)]
                return "\n".join(f"  {a} -> {b}   [{w}]" for a, b, w in steps)
            if nxt not in paths:
                paths[nxt] = paths[node] + [(node, nxt, where)]
                queue.append(nxt)
    raise AssertionError("no cycle found in a strongly connected component")  # pragma: no cover


def _in_tensor_layer(module):
    return any(module == top or module.startswith(top + ".") for top in TENSOR_LAYER)


def test_needle_core_imports_have_no_cycle():
    graph = import_graph()
    cycles = [c for c in strongly_connected(graph) if not all(map(_in_tensor_layer, c))]
    assert not cycles, "import cycles among needle-core modules:\n" + "\n\n".join(
        a_cycle(graph, c) for c in cycles)


def test_device_layer_imports_run_one_way():
    graph = import_graph()
    for i, module in enumerate(DEVICE_LAYERS):
        above = set(DEVICE_LAYERS[i + 1:])
        seen, todo = set(), [module]
        while todo:  # everything ``module`` reaches, directly or not
            for nxt in graph[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        assert not seen & above, f"{module} reaches {sorted(seen & above)}, which sit above it"


def test_the_checker_sees_function_level_and_package_imports(tmp_path, monkeypatch):
    # The checker itself, on a made-up package: a cycle closed by a function-level import, and one
    # closed through a package's __init__, are both found and printed.
    pkg = tmp_path / "needle"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from . import high\n")
    (pkg / "high.py").write_text("from . import low\n")
    (pkg / "base.py").write_text("from .sub import leaf\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import base\n")
    (pkg / "sub" / "leaf.py").write_text("import os\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", pkg)
    graph = import_graph()
    cycles = sorted(sorted(c) for c in strongly_connected(graph))
    assert cycles == [["needle.base", "needle.sub"], ["needle.high", "needle.low"]]
    text = a_cycle(graph, {"needle.high", "needle.low"})
    assert "needle.high -> needle.low" in text and "needle.low -> needle.high" in text
    assert "function-level" in text
