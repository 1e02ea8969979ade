"""The errors this package raises on purpose: catch ``MobileNetError`` to catch them all.

Every refusal (a file that cannot be read, an image the model cannot take, an option out of
range, something not supported yet) is one of these, with a message that names the culprit
and says what to do. ``MobileNetError`` is a ``ValueError``, so code written against the
older bare ``ValueError`` keeps working. Anything else that escapes is a bug: the command line
shows its traceback.
"""

from __future__ import annotations


class MobileNetError(ValueError):
    """A refusal with a message for the user: bad usage or input, never a bug."""


class WeightsError(MobileNetError):
    """A weights or model file that is unreadable, unknown, damaged or does not fit the model."""


class InputError(MobileNetError):
    """An image or array the model cannot take (shape, dtype, range, NaN), or a bad option."""


class UnsupportedError(MobileNetError):
    """Something this package does not do (yet): an op, a layer class, a layout."""


class MissingDependencyError(UnsupportedError, ImportError):
    """An optional package this needs is not installed (Numba, flatbuffers, matplotlib); the
    message names the extra to install. Also an ``ImportError``, what such code used to raise."""
