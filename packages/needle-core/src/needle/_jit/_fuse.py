"""Fusion of the recorded kernels (filled in where a backend offers an elementwise program)."""


def fuse(steps, tape, keep):
    """``steps`` with runs of elementwise kernels merged where the backend can run them as one
    pass; ``keep`` are slots that must hold their values after the step (inputs and state)."""
    return steps
