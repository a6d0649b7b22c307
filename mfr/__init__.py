"""mfr: a reproducible study of masked face recognition with a Siamese SENet50."""

import os as _os

# TensorFlow's C++ start-up banners (CPU features, absl) say nothing a user of mfr needs; a
# value the user set wins. Set here, before any module imports TensorFlow through Keras.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
