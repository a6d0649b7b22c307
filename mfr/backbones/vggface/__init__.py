"""SENet50's network (keras-vggface's, in Keras 3) and its released weights; its facts and
preprocessing modes are the backbone's (:mod:`mfr.backbones.senet50`)."""

from mfr.backbones.preprocess import preprocess
from mfr.backbones.vggface.pretrained import senet50
from mfr.backbones.vggface.release import VGGFACE2_MEAN_BGR
from mfr.backbones.vggface.senet50 import VGGFACE_NAMES, build_senet50

__all__ = [
    "VGGFACE2_MEAN_BGR",
    "VGGFACE_NAMES",
    "build_senet50",
    "preprocess",
    "senet50",
]
