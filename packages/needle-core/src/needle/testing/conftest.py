# Makes the suite's fixtures available under `pytest --pyargs needle.testing`.
from needle.testing.fixtures import *  # noqa: F401,F403
