"""dlib's face ResNet (``dlib_face_recognition_resnet_model_v1``) as a backbone: the network is
:mod:`mfr.backbones.dlib_network` (Keras 3, layer for layer), its weights dlib's ``.dat`` file
read in pure Python (:mod:`mfr.backbones.formats.dlib_dat`), its input dlib's 150x150 face chips
(:mod:`mfr.backbones.dlib_chips`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mfr.backbones.base import Backbone
from mfr.backbones.facts import BackboneFacts, Preprocessing, ReleasedWeights, WeightFile
from mfr.backbones.formats.dlib_dat import (
    EMBEDDING_SIZE,
    GRADCAM_LAYER,
    INPUT_SIZE,
    MEAN_RGB,
    WEIGHTS_FILE,
    default_weights_path,
)
from mfr.core.errors import MissingError

if TYPE_CHECKING:
    import keras

__all__ = ["BACKBONE", "FACE_RECOGNITION_TOLERANCE", "TOLERANCE", "DlibResNet", "MEAN_RGB",
           "WEIGHTS_FILE", "default_weights_path"]

#: face_recognition's documented default tolerance (``compare_faces``) on the raw Euclidean
#: distance of dlib's descriptors
FACE_RECOGNITION_TOLERANCE = 0.6
TOLERANCE = ("euclidean_raw", FACE_RECOGNITION_TOLERANCE,
             "face_recognition's documented default tolerance (compare_faces, 0.6) on its raw "
             "Euclidean distance; not calibrated on masked faces")
CHIP_SIZE = INPUT_SIZE


class DlibResNet(Backbone):
    facts = BackboneFacts(
        name="dlib_resnet",
        label="dlib ResNet (face_recognition_models)",
        short_label="dlib ResNet",
        input_size=CHIP_SIZE,
        embedding_size=EMBEDDING_SIZE,
        n_layers=109,  # len(model.layers), Input included
        gradcam_layer=GRADCAM_LAYER,  # stage 5's output, 4x4x256 at 150 px
        preprocessing=(Preprocessing("dlib", "RGB", MEAN_RGB, 1 / 256,
                                     "(RGB - mean) / 256 on the 150x150 chip, as dlib's input "
                                     "layer"),),
        weights=ReleasedWeights(
            name="dlib_v1",
            label="dlib ResNet pre-trained (dlib_face_recognition_resnet_model_v1)",
            # installed with the PyPI package, not downloaded by mfr
            files=(WeightFile(WEIGHTS_FILE, None),),
            source="PyPI package face_recognition_models 0.3.0 (Adam Geitgey; "
                   "https://github.com/ageitgey/face_recognition_models), which ships Davis "
                   "King's dlib-models release (https://github.com/davisking/dlib-models)",
            licence="CC0 1.0 Universal / public domain (the package's README and LICENSE file: "
                    "'These models were created by Davis King and are licensed in the public "
                    "domain or under CC0 1.0 Universal'); the package's metadata says 'MIT "
                    "license'",
            format="dlib's serialised network (.dat), mfr.backbones.formats.dlib_dat"),
        settings=("face_box",),
        alignment="dlib.get_face_chip(image, 5-point landmarks, size=150, padding=0.25): "
                  "dlib's 5-point shape predictor in the face box",
        face_boxes=("crop", "mtcnn", "hog"),
        frozen="affine (folded batch norm) frozen",
        default_distance="euclidean_raw",
        documented_threshold=TOLERANCE,
        saved_as="final_trainable.h5: the trained layers, by Keras layer name (legacy HDF5 "
                 "layout)",
        notes=("dlib's descriptor is the fc output (lengths ~0.9-1.6, not 1)",),
    )

    def build(self, config: Any) -> keras.Model:
        """The network with the config's weights: ``dlib_v1`` (the face_recognition_models
        file), a ``.dat`` file of this architecture, or None (random init)."""
        from mfr.backbones.dlib_network import build_dlib_resnet

        w = config.weights
        return build_dlib_resnet(weights="default" if w == self.facts.weights.name else w)

    def pretrained_file(self) -> Path:
        return default_weights_path()

    def check_weights(self, weights: str | None, progress: bool = True) -> None:
        """The released file in face_recognition_models, or a ``.dat`` file of this network
        (read whole: :func:`mfr.backbones.formats.dlib_dat.read_dlib_net`); else a one-line
        error."""
        from mfr.backbones.formats.dlib_dat import read_dlib_net

        if weights is None:
            return
        if weights == self.facts.weights.name:
            default_weights_path()
            return
        if not Path(weights).is_file():
            raise MissingError(f"{weights}: weights file not found (expected dlib_v1, none, or "
                               f"a dlib .dat file of dlib_face_recognition_resnet_model_v1's "
                               f"network)")
        read_dlib_net(weights)

    def align_faces(self, images: np.ndarray, progress: bool = False,
                    face_box: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The 150x150 face chips of uint8 face crops (:func:`mfr.backbones.dlib_chips.face_chips`,
        landmarks found in `face_box`: the crop, or MTCNN's / dlib's face, else the crop): what
        the network takes, made once per image, and their flags (``no_face_detected``,
        ``failed``: an image dlib rejects gets a blank chip)."""
        from mfr.backbones.dlib_chips import face_chips
        from mfr.core.progress import progress_bar

        box = face_box or self.facts.face_boxes[0]
        n = len(images)
        out = np.empty((n, CHIP_SIZE, CHIP_SIZE, 3), np.uint8)
        no_face, failed = np.zeros(n, bool), np.zeros(n, bool)
        step = 256
        for s in progress_bar(range(0, n, step), progress, total=-(-n // step),
                              desc="face chips"):
            chips, flags = face_chips(np.asarray(images[s:s + step]), box=box)
            out[s:s + step] = chips
            no_face[s:s + step], failed[s:s + step] = flags["no_face_detected"], flags["failed"]
        return out, {"no_face_detected": no_face, "failed": failed}


BACKBONE = DlibResNet()
