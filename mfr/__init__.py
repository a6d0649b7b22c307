"""mfr: a reproducible study of masked face recognition with a Siamese SENet50."""

import os as _os

from mfr.core import quiet as _quiet

# TensorFlow's C++ start-up banners say nothing a user of mfr needs; a value the user set wins.
# Set here, before any module imports TensorFlow through Keras; the records TensorFlow prints
# before it reads this level (the oneDNN notice) are filtered by mfr.core.quiet.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_quiet.install()

__version__ = "0.1.0"
