"""The model zoo: importing this package registers every model (one module per family)."""

from . import alexnet, bottleneck, lenet, resnet, vgg  # noqa: F401
