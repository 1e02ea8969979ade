"""Published MobileNet V1 numbers, quoted (not computed), to compare our counts against.

Sources: the MobileNet paper, Howard et al. 2017, "MobileNets: Efficient Convolutional Neural
Networks for Mobile Vision Applications", arXiv:1704.04861, Tables 2, 4, 6 and 7; and TF-slim's
``research/slim/nets/mobilenet_v1.md`` (tensorflow/models), whose checkpoints have 1001 classes
(a "background" class first).
"""

# Paper Tables 6 (width, at 224) and 7 (resolution, at alpha 1.0):
# (alpha, resolution) -> (ImageNet top-1 %, million mult-adds, million parameters)
PAPER = {(1.0, 224): (70.6, 569, 4.2), (0.75, 224): (68.4, 325, 2.6),
         (0.5, 224): (63.7, 149, 1.3), (0.25, 224): (50.6, 41, 0.5),
         (1.0, 192): (69.1, 418, 4.2), (1.0, 160): (67.2, 290, 4.2),
         (1.0, 128): (64.4, 186, 4.2)}

# TF-slim table: (alpha, resolution) -> (top-1 %, million MACs, million parameters)
SLIM = {(1.0, 224): (70.9, 569, 4.24), (1.0, 192): (70.0, 418, 4.24),
        (1.0, 160): (68.0, 291, 4.24), (1.0, 128): (65.2, 186, 4.24),
        (0.75, 224): (68.4, 317, 2.59), (0.75, 192): (67.2, 233, 2.59),
        (0.75, 160): (65.3, 162, 2.59), (0.75, 128): (62.1, 104, 2.59),
        (0.5, 224): (63.3, 150, 1.34), (0.5, 192): (61.7, 110, 1.34),
        (0.5, 160): (59.1, 77, 1.34), (0.5, 128): (56.3, 49, 1.34),
        (0.25, 224): (49.8, 41, 0.47), (0.25, 192): (47.7, 34, 0.47),
        (0.25, 160): (45.5, 21, 0.47), (0.25, 128): (41.5, 14, 0.47)}

# Paper Table 2, MobileNet 1.0/224: layer type -> (% of mult-adds, % of parameters)
PAPER_TABLE_2 = {"Conv 1x1": (94.86, 74.59), "Conv DW 3x3": (3.06, 1.06),
                 "Conv 3x3 (stem)": (1.19, 0.02), "Fully connected": (0.18, 24.33)}

# Paper Table 4: model -> (top-1 %, million mult-adds, million parameters)
PAPER_TABLE_4 = {"Conv MobileNet": (71.7, 4866, 29.3), "MobileNet": (70.6, 569, 4.2)}

# The family at 224x224, one row per published model:
# name -> (--arch, builder options, ImageNet top-1 %, million MACs, million params, source)
FAMILY = {
    "MobileNet V1 1.0": ("v1", {}, 70.9, 569, 4.24, "TF-slim mobilenet_v1.md"),
    "MobileNet V1 0.25": ("v1", {"alpha": 0.25}, 49.8, 41, 0.47, "TF-slim mobilenet_v1.md"),
    "MobileNetV2 1.0": ("v2", {}, 71.8, 300, 3.47, "TF-slim mobilenet/README.md"),
    "MobileNetV2 1.4": ("v2", {"alpha": 1.4}, 75.0, 582, 6.06, "TF-slim mobilenet/README.md"),
    "MobileNetV2 0.35": ("v2", {"alpha": 0.35}, 60.3, 59, 1.66, "TF-slim mobilenet/README.md"),
    "MobileNetV3-Large 1.0": ("v3-large", {}, 75.2, 217, 5.4, "TF-slim mobilenet/README.md"),
    "MobileNetV3-Large 0.75": ("v3-large", {"alpha": 0.75}, 73.3, 155, 4.0,
                               "TF-slim mobilenet/README.md"),
    "MobileNetV3-Large minimalistic": ("v3-large", {"minimalistic": True}, 72.3, 209, 3.9,
                                       "TF-slim mobilenet/README.md"),
    "MobileNetV3-Small 1.0": ("v3-small", {}, 67.5, 66, 2.9, "TF-slim mobilenet/README.md"),
    "MobileNetV3-Small 0.75": ("v3-small", {"alpha": 0.75}, 65.4, 44, 2.4,
                               "TF-slim mobilenet/README.md"),
    "MobileNetV3-Small minimalistic": ("v3-small", {"minimalistic": True}, 61.9, 65, 2.0,
                                       "TF-slim mobilenet/README.md"),
}

# The ImageNet weight files Keras publishes: --arch -> (alphas, resolutions)
KERAS_WEIGHTS = {"v1": ((0.25, 0.5, 0.75, 1.0), (128, 160, 192, 224)),
                 "v2": ((0.35, 0.5, 0.75, 1.0, 1.3, 1.4), (96, 128, 160, 192, 224)),
                 "v3-large": ((0.75, 1.0), (224,)), "v3-small": ((0.75, 1.0), (224,))}
