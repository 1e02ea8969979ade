"""The .tflite half: a reader, int8/uint8 kernels equal bit for bit to TFLite's, and our own PTQ.

``ops`` holds the vectorised integer kernels, ``reference`` their plain-loop twins,
``fixedpoint`` the integer rescaling both use, ``float_graph`` the float ops (on the
package's float kernels), ``tflite_file`` the reader, ``metadata`` the file's TFLite metadata
(normalization, labels file), ``opnames`` the schema's op names, ``graph`` TFLite's per-op
preparation, ``model`` the runner behind ``load_tflite``, ``quantize`` and ``calibrate`` our
post-training quantization of a float ``Network`` (``mnp.quantize``), and ``classify`` and
``summary`` what the command line shows of a .tflite file.
"""

from .classify import Int8Classifier, classify_tflite
from .model import TFLiteModel, load_tflite
from .quantize import quantize
from .summary import tflite_summary, tflite_summary_table
from .tflite_file import is_tflite

__all__ = ["Int8Classifier", "TFLiteModel", "classify_tflite", "is_tflite", "load_tflite", "quantize",
           "tflite_summary", "tflite_summary_table"]
