"""Seeding: every random draw in Needle comes from numpy's global generator."""
import numpy as np


def manual_seed(seed):
    """Seed numpy's global generator, which all Needle initialisers and devices draw from."""
    np.random.seed(seed)
