"""mobilenet-np: MobileNet in pure NumPy, for learning how efficient CNNs work.

    import mobilenet_np as mnp
    model = mnp.MobileNet(alpha=0.25, weights="mobilenet_2_5_224_tf.h5")
    x = mnp.preprocess_input(mnp.load_image("photo.jpg", 224))[None]  # (1, 224, 224, 3)
    print(mnp.decode_predictions(model.predict(x), top=5))
"""

from .applications import MobileNet, MobileNetV2, MobileNetV3Large, MobileNetV3Small
from .errors import InputError, MobileNetError, UnsupportedError, WeightsError
from .graph_model import GraphModel
from .imagenet import decode_predictions, imagenet_classes, load_image, preprocess_input
from .int8 import load_tflite, quantize
from .loader import load
from .model import Network
from .registry import FAMILIES, get_family

__version__ = "0.1.0"
__all__ = ["FAMILIES", "GraphModel", "InputError", "MobileNet", "MobileNetError", "MobileNetV2",
           "MobileNetV3Large", "MobileNetV3Small", "Network", "UnsupportedError", "WeightsError",
           "decode_predictions",
           "get_family", "imagenet_classes", "load", "load_image", "load_tflite", "preprocess_input",
           "quantize"]
