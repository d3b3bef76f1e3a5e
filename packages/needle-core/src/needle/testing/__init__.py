"""Testing helpers and the backend conformance suite.

Run the suite on a backend with one command, from any directory::

    NEEDLE_TEST_BACKENDS=cpu pytest --pyargs needle.testing

``NEEDLE_TEST_BACKENDS`` takes a comma list; without it ``NEEDLE_BACKEND`` picks one backend,
and without either every enabled backend runs (the in-process ``reference`` backend too).
A backend that is not installed as a distribution can be registered in-process from a
``conftest.py`` with :func:`register_test_backend`, then tested the same way.

:func:`gradcheck` compares autograd with central finite differences and is public.
"""
from ._backends import (
    NEEDLE_TEST_BACKENDS, REFERENCE, backend_device, register_reference_backend, register_test_backend,
    selected_backends,
)
from .gradcheck import gradcheck, numerical_gradients

__all__ = ["gradcheck", "numerical_gradients", "register_test_backend", "register_reference_backend",
           "selected_backends", "backend_device", "NEEDLE_TEST_BACKENDS", "REFERENCE"]
