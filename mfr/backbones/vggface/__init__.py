"""The network: keras-vggface's SENet50 (VGGFace2) in Keras 3, its weights and preprocessing."""

from mfr.backbones.preprocess import VGGFACE2_MEAN_BGR, preprocess
from mfr.backbones.vggface.pretrained import senet50
from mfr.backbones.vggface.senet50 import PRETRAINED, VGGFACE_NAMES, build_senet50

__all__ = [
    "PRETRAINED",
    "VGGFACE2_MEAN_BGR",
    "VGGFACE_NAMES",
    "build_senet50",
    "preprocess",
    "senet50",
]
