__version__ = "0.1.0"
# Oldest and newest needle backend-protocol version (needle.backend_ndarray.protocol) this release implements.
SUPPORTED_PROTOCOL = (2, 2)
