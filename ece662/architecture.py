"""The course CNN's shape in words, for both frameworks (no torch, no TensorFlow here).

``SmallCNN``: three 3x3 convolutions and two Linear layers, about 0.58M parameters (most of them in the first
Linear layer). ``ece662/model.py`` builds it in PyTorch, ``ece662/keras_model.py`` in Keras; weights move
between them in the *canonical layout*, the torch ``state_dict``'s names and shapes.
"""
ARCHITECTURE = "SmallCNN"
DEFAULT_CONFIG = {"channels": [32, 64, 64], "hidden": 128, "dropout": 0.5, "num_classes": 10}

# Keras layer name -> torch SmallCNN state_dict prefix
CANONICAL_PREFIX = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
                    "fc1": "classifier.1", "fc2": "classifier.4"}
CONV_LAYERS = ("conv1", "conv2", "conv3")

# Removing filters (Part 3) keeps a multiple of this many channels: CPU kernels vectorise over 8 channels, and
# 8/16/16 channels run faster than 7/13/13 (measured on 2 cores: 4.1 vs 5.5 ms per batch of 256).
CHANNEL_MULTIPLE = 8
