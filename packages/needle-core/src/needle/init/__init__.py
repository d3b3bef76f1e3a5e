"""Tensor initialisers (course names). ``np.random.seed(n)`` makes draws reproducible."""
from .init_basic import constant, one_hot, ones, ones_like, rand, randb, randn, zeros, zeros_like
from .init_initializers import kaiming_normal, kaiming_uniform, xavier_normal, xavier_uniform

__all__ = ["rand", "randn", "constant", "ones", "zeros", "randb", "one_hot", "zeros_like", "ones_like",
           "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]
