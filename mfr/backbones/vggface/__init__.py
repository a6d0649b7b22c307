"""SENet50's network (keras-vggface's, in Keras 3) and its released weights; its facts and
preprocessing modes are the backbone's (:mod:`mfr.backbones.senet50`, with the release's facts
in :mod:`mfr.backbones.vggface_release`, read without Keras)."""

from mfr.backbones.preprocess import preprocess
from mfr.backbones.vggface.pretrained import senet50
from mfr.backbones.vggface.senet50 import VGGFACE_NAMES, build_senet50
from mfr.backbones.vggface_release import VGGFACE2_MEAN_BGR

__all__ = [
    "VGGFACE2_MEAN_BGR",
    "VGGFACE_NAMES",
    "build_senet50",
    "preprocess",
    "senet50",
]
