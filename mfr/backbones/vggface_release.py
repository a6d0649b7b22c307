"""keras-vggface's released SENet50 weights (VGGFace2) and the channel means they were trained
with: facts of :mod:`mfr.backbones.senet50` that its weights code (:mod:`mfr.backbones.vggface.
pretrained`) reads too, so neither imports the other."""

from __future__ import annotations

from mfr.backbones.facts import ReleasedWeights, WeightFile

__all__ = ["VGGFACE2_MEAN_BGR", "VGGFACE2_RELEASE"]

#: keras-vggface version=2 channel means, in BGR order
VGGFACE2_MEAN_BGR: tuple[float, float, float] = (91.4953, 103.8827, 131.0912)

VGGFACE2_RELEASE = ReleasedWeights(
    name="vggface2",
    label="SENet50 pre-trained (VGGFace2)",
    files=(WeightFile(
        "rcmalli_vggface_tf_notop_senet50.h5",
        "https://github.com/rcmalli/keras-vggface/releases/download/v2.0/"
        "rcmalli_vggface_tf_notop_senet50.h5"),),
    source="keras-vggface 0.6's release v2.0 (rcmalli); no checksum published: the file is "
           "checked by its layers",
    licence="keras-vggface is MIT-licensed; the VGGFace2 weights follow the VGGFace2 dataset's "
            "terms (research use)",
    format="keras-vggface legacy HDF5 (.h5), mfr.backbones.formats.legacy_h5",
    cache_name="vggface")
