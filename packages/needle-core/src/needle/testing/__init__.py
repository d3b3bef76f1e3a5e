"""Testing helpers and the backend conformance suite.

Run the suite on a backend with one command, from any directory::

    NEEDLE_TEST_BACKENDS=cpu pytest --pyargs needle.testing

``NEEDLE_TEST_BACKENDS`` takes a comma list; without it ``NEEDLE_BACKEND`` picks one backend,
and without either every enabled backend runs (the in-process ``reference`` backend too).
A backend named there that is not installed or cannot run here is an error that says why (a
typo must not pass as "all skipped"); ``NEEDLE_TEST_ALLOW_MISSING=1`` makes it a visible skip instead.

A backend that is not installed as a distribution is registered in-process instead; in
your own tests folder::

    # conftest.py
    from needle.testing.fixtures import *            # the suite's fixtures
    from needle.testing import register_test_backend
    import my_backend                                 # a protocol module
    register_test_backend("mine", my_backend)

    # test_needle_conformance.py
    from needle.testing.test_conformance_kernels import *
    from needle.testing.test_conformance_ndarray import *
    from needle.testing.test_conformance_ops import *

then ``NEEDLE_TEST_BACKENDS=mine pytest``. needle-core's own tests do exactly this with the
minimal ``reference`` backend (required kernels only, every dtype but float64).

:func:`gradcheck` compares autograd with central finite differences and is public.
"""
from ._backends import (
    NEEDLE_TEST_ALLOW_MISSING, NEEDLE_TEST_BACKENDS, REFERENCE, backend_device, register_reference_backend,
    register_test_backend, selected_backends,
)
from .gradcheck import gradcheck, numerical_gradients

__all__ = ["gradcheck", "numerical_gradients", "register_test_backend", "register_reference_backend",
           "selected_backends", "backend_device", "NEEDLE_TEST_BACKENDS", "NEEDLE_TEST_ALLOW_MISSING", "REFERENCE"]
