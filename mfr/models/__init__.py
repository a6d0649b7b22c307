"""The network: keras-vggface's SENet50 (VGGFace2) in Keras 3, its weights and preprocessing."""

from mfr.models import weights
from mfr.models.preprocess import VGGFACE2_MEAN_BGR, preprocess
from mfr.models.senet50 import VGGFACE_NAMES, build_senet50, senet50

__all__ = [
    "senet50",
    "build_senet50",
    "preprocess",
    "VGGFACE2_MEAN_BGR",
    "VGGFACE_NAMES",
    "weights",
]
