"""Needle: a small deep-learning framework with pluggable native backends.

``import needle as ndl``: tensors and autograd (``ndl.Tensor``), ops (``ndl.ops`` and the
same functions at top level), initialisers (``ndl.init``), devices (``ndl.cpu()``, ...).
``ndl.nn``/``ndl.optim`` come from needle-nn and ``ndl.data`` from needle-data.

PyTorch's factories sit at the top level too: ``ndl.tensor``, ``zeros``, ``ones``, ``full``,
``empty``, ``arange``, ``linspace``, ``eye``, ``rand``, ``randn``, ``randint``, ``zeros_like``,
``ones_like``, ``full_like`` (``zeros``, ``ones``, ``rand``, ``randn``, ``zeros_like`` and
``ones_like`` are ``ndl.init``'s functions).
"""
import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)  # needle-nn/needle-data add subpackages

from .version import __version__  # noqa: E402
from . import backend_ndarray  # noqa: E402
from . import autograd  # noqa: E402
from .autograd import Tensor, TensorTuple, from_dlpack, no_grad  # noqa: E402
from . import ops  # noqa: E402
from .ops import *  # noqa: E402,F401,F403
from . import init  # noqa: E402
from .init import ones, ones_like, rand, randn, zeros, zeros_like  # noqa: E402,F401
from ._factories import arange, empty, eye, full, full_like, linspace, randint, tensor  # noqa: E402,F401
from .backends import all_devices, cpu, cpu_numpy, cuda, default_device, device  # noqa: E402
from ._seed import manual_seed  # noqa: E402
from ._grad_hooks import register_grad_ready_hook  # noqa: E402
from ._jit import jit  # noqa: E402

_EXTRAS = {"nn": "needle-nn", "optim": "needle-nn", "data": "needle-data", "distributed": "needle-dist"}


def __getattr__(name):
    if name in ("viz", "utils"):  # needle-core's own, imported on first use
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    # ndl.nn / ndl.optim / ndl.data live in other distributions: import on first use.
    if name in _EXTRAS:
        import importlib
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise ImportError(f"needle.{name} is provided by the {_EXTRAS[name]} package: "
                              f"pip install {_EXTRAS[name]}") from None
    raise AttributeError(f"module 'needle' has no attribute {name!r}")
