"""The backend contract is one table (contract.KERNELS): the protocol tuples, the guide
(docs/writing-a-backend.md) and the template's stubs (packages/_template-backend) are checked against it."""
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from needle.backend_ndarray import contract, numpy_backend, protocol

REPO = Path(__file__).resolve().parents[3]
GUIDE = REPO / "docs" / "writing-a-backend.md"
TEMPLATE = REPO / "packages" / "_template-backend" / "src" / "needle_mybackend" / "_backend.py"


def _doc(text):
    return " ".join((text or "").split())


def test_protocol_tuples_come_from_the_table():
    assert len(protocol.REQUIRED_KERNELS) == 26 and len(protocol.required_kernels(2)) == 37
    assert protocol.REQUIRED_KERNELS[:4] == ("Array", "from_numpy", "to_numpy", "fill")
    assert "cast" in protocol.REQUIRED_KERNELS_V2 and "cast" not in protocol.REQUIRED_KERNELS
    assert "matmul_tn" in protocol.FUSED_KERNELS and "matmul_tn" not in protocol.OPTIONAL_KERNELS
    tuples = (protocol.required_kernels(2) + protocol.OPTIONAL_KERNELS + protocol.OPTIONAL_KERNELS_V2
              + protocol.FUSED_KERNELS + protocol.MEMORY_KERNELS + protocol.DLPACK_KERNELS
              + protocol.EWISE_PROGRAM_KERNELS[:-1])
    assert sorted(tuples) == sorted(k.name for k in contract.KERNELS if k.kind != "hook")
    assert len(set(tuples)) == len(tuples)


def test_every_row_is_documented_and_classified():
    for k in contract.KERNELS:
        assert k.doc and k.kind in contract.KINDS and k.since in protocol.SUPPORTED_PROTOCOLS, k
        kinds = (contract.IN_PLACE, contract.DISTINCT, contract.PARAM_IN_PLACE, contract.NO_ALIASING)
        assert k.aliasing in kinds, k
        assert k.dtypes in ("all", "not bool", "float", "integer, bool", "fused"), k
    steps = [k.name for k in contract.KERNELS if k.aliasing == contract.PARAM_IN_PLACE]
    assert steps == ["adam_step", "sgd_step", "rmsprop_step"]  # IN_PLACE_UPDATES may list only these
    ewise = [k for k in contract.KERNELS if k.kind in ("required", "optional") and k.aliasing == contract.IN_PLACE]
    assert all(k.name.startswith(("ewise_", "scalar_")) or k.name in ("cast", "where") for k in ewise)


def test_the_stubs_raise_and_a_subclass_provides_only_what_it_overrides():
    class Half(contract.Backend):
        PROTOCOL_VERSION = 2

        def ewise_add(self, a, b, out):
            out[:] = a + b

    half = Half()
    with pytest.raises(NotImplementedError, match="'ewise_mul'"):
        half.ewise_mul(1, 2, 3)
    assert contract.provides(half, "ewise_add") and not contract.provides(half, "ewise_mul")
    assert "ewise_mul" in protocol.missing_kernels(half) and "ewise_add" not in protocol.missing_kernels(half)
    assert protocol.optional_kernels(half) == []


def test_the_numpy_backend_matches_the_table():
    assert protocol.missing_kernels(numpy_backend) == []
    problems = [contract.arity_problem(k.name, getattr(numpy_backend, k.name)) for k in contract.KERNELS
                if hasattr(numpy_backend, k.name)]
    assert [p for p in problems if p] == []
    assert contract.arity_problem("ewise_add", lambda a, out: None) is not None
    assert contract.arity_problem("dlpack_export", lambda a, shape, strides, offset, max_version=None, stream=None:
                                  None) is None


@pytest.mark.skipif(not TEMPLATE.exists(), reason="the repository's template is not beside this test")
def test_the_template_stubs_are_the_contract():
    spec = importlib.util.spec_from_file_location("_template_backend", TEMPLATE)
    template = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(template)
    wanted = protocol.required_kernels(template.PROTOCOL_VERSION)
    assert protocol.missing_kernels(template) == []
    for name in wanted:
        row, stub = contract.BY_NAME[name], getattr(template, name)
        assert _doc(stub.__doc__) == row.doc, f"the template's {name} docstring differs from contract.Backend's"
        if name != "Array":
            params = ", ".join(str(p) for p in inspect.signature(stub).parameters.values())
            assert params.replace("'", '"') == row.signature, name
    with pytest.raises(NotImplementedError):
        template.ewise_add(None, None, None)


def _guide_calls(text):
    """``{name: {argument lists}}`` of every ``name(args)`` in code spans of the guide."""
    calls = {}
    for name, args in re.findall(r"`(\w+)\(([^`()]*)\)`", text):
        calls.setdefault(name, set()).add(args)
    return calls


@pytest.mark.skipif(not GUIDE.exists(), reason="the repository's guide is not beside this test")
def test_the_guide_names_every_kernel_with_the_tables_signature():
    text = GUIDE.read_text()
    calls = _guide_calls(text)
    for k in contract.KERNELS:
        if k.kind in ("required", "optional"):
            assert f"`{k.name}" in text, f"docs/writing-a-backend.md does not mention {k.name}"
        for args in calls.get(k.name, ()):  # the signature, or a call with as many arguments (`ewise_add(x, y, x)`)
            same = args == k.signature or (args.count(",") == k.signature.count(",") and "=" not in args)
            assert same, f"the guide writes {k.name}({args}); the contract says ({k.signature})"
    v1, v2 = len(protocol.required_kernels(1)), len(protocol.required_kernels(2))
    assert f"{v2} kernels on flat buffers ({v1} in protocol 1)" in text
    assert f"required kernels  {v2} of {v2} present" in text


class _OneBackend:
    """A registry stand-in that serves one backend object (what BackendDevice asks of the registry)."""

    def __init__(self, backend):
        self.backend = backend

    def load(self, name, index):
        return self.backend, None


def test_a_device_reaches_its_backend_and_kernels_explicitly():
    from needle._device import BackendDevice

    class Tiled(contract.Backend):
        PROTOCOL_VERSION, DTYPES, __tile_size__ = 2, ("float32",), 8

        def ewise_add(self, a, b, out):
            return "added"

        def matmul_tiled(self):
            return "tiled"

    backend = Tiled()
    dev = BackendDevice("tiled", "tiled", _OneBackend(backend))
    assert dev.backend is backend and dev.mod is backend
    assert dev.kernel("ewise_add")(1, 2, 3) == "added"
    assert dev.optional("ewise_relu") is None and dev.fused("matmul_tn", "float32") is None  # stubs are absent
    with pytest.raises(AttributeError, match=r"device tiled\(\) \(backend 'tiled'\) has no kernel 'ewise_mul'"):
        dev.kernel("ewise_mul")
    assert dev.kernel("ewise_mul", "fallback") == "fallback"
    # the course's spelling of raw kernels and constants reads them from the backend
    assert dev.matmul_tiled() == "tiled" and dev.__tile_size__ == 8
    with pytest.raises(AttributeError, match="has no attribute 'nonsense'"):
        dev.nonsense
