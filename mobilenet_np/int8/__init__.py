"""The integer-only half: a .tflite reader and int8 kernels equal bit for bit to TFLite's.

``ops`` holds the vectorised kernels, ``reference`` their plain-loop twins, ``fixedpoint``
the integer rescaling both use, ``tflite_file`` the reader, ``graph`` TFLite's per-op
preparation, and ``model`` the runner behind ``load_tflite``.
"""

from .model import TFLiteModel, load_tflite

__all__ = ["TFLiteModel", "load_tflite"]
