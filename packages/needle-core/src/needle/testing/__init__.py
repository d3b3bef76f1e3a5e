"""Testing helpers and the backend conformance suite.

Run the suite on a backend with one command::

    NEEDLE_TEST_BACKENDS=cpu pytest --pyargs needle.testing
"""
from .gradcheck import gradcheck, numerical_gradients

__all__ = ["gradcheck", "numerical_gradients"]
