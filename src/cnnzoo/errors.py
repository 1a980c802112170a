"""cnnzoo's user-facing errors.

Every problem a user can cause (a wrong shape, a corrupt file, an unknown name) raises a subclass of
:class:`CnnzooError`. The CLI prints its message on one line and exits with code 2, never a traceback;
library users can catch the base class.
"""

from __future__ import annotations


class CnnzooError(Exception):
    """Base class: a clear, one-line problem the user can fix."""

    exit_code = 2


class UnknownModelError(CnnzooError, KeyError):
    """A model name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ShapeError(CnnzooError, ValueError):
    """An input the model cannot take: a feature map collapses, or channels/features do not match."""


class DataError(CnnzooError):
    """A dataset file that is missing, truncated, corrupt or inconsistent."""


class ChecksumError(DataError):
    """A file whose checksum differs from the published one."""


class CheckpointError(CnnzooError):
    """A checkpoint or weights file that cannot be read safely."""


class ConversionError(CnnzooError):
    """A model that cannot be converted (e.g. to fully convolutional form)."""


class LayerStringError(CnnzooError, ValueError):
    """A layer string (``1x28x28-32C3-MP2-10N``) that cannot be read or built: one line saying why, then a
    caret line under the offending token. ``position`` and ``length`` locate the token in ``text``; ``code`` and
    ``values`` say what went wrong (cnnzoo.models.layererrors renders them in English and Chinese)."""

    def __init__(
        self, reason: str, text: str, position: int, length: int = 1, *, code: str = "", values=None
    ) -> None:
        self.reason, self.text = reason, text
        self.code, self.values = code, dict(values or {})
        self.position, self.length = max(0, position), max(1, length)
        if not text:  # a module that cannot be written as a string: no text to point into
            super().__init__(reason)
            return
        super().__init__(f"{text}  <- {reason}\n{' ' * self.position}{'^' * self.length}")
