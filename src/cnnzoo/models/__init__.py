"""The model zoo: importing this package registers every model (one module per family)."""

from . import alexnet, lenet, vgg  # noqa: F401
