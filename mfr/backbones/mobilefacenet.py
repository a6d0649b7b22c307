"""InsightFace's MobileFaceNet (``model-y1-test2``: ArcFace loss, MS1M, 128-d, 4 MB) as a
backbone. Its network is built from the MXNet release itself (read in pure Python:
:mod:`mfr.backbones.formats.mxnet`; the graph interpreted into Keras layers:
:mod:`mfr.backbones.formats.mxnet_keras`); its input is a 112x112 face warped onto ArcFace's
five-point template from five landmarks (:mod:`mfr.data.face_finding`, :mod:`mfr.data.face_align`);
its reference is the same release's ncnn conversion run by the ``ncnn`` package
(:mod:`mfr.backbones.embedders.ncnn_mobilefacenet`, ``--embedder mobilefacenet_ncnn``).

Face boxes (``face_box``, where the five landmarks come from):

- ``cascade`` (default): MTCNN, then MTCNN on the photo padded by 25% with lower thresholds
  (:data:`mfr.data.face_finding.DEFAULT_STAGES`); where neither finds a face, the photo is taken
  to be a face crop and the template is stretched onto it (flagged ``no_face_detected``);
- ``mtcnn``: MTCNN alone, then the same fallback;
- ``crop``: no detection: the template stretched onto every photo (for photos already aligned
  to the template at 112 px, as MLFW's, the warp is the identity).

Files: the GitHub repository liguiyuan/mobilefacenet-ncnn, folder ``models/``, at a pinned commit
(its latest, 2020-05-14), so a URL always serves the bytes of the pinned sha256; cached in
``$KERAS_HOME/models/insightface-mobilefacenet``, or the folder ``$MFR_MOBILEFACENET_DIR``
names (a copy made by hand). Licence: InsightFace releases its pretrained models for
non-commercial research only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mfr.backbones.base import Backbone
from mfr.backbones.facts import BackboneFacts, Preprocessing, ReleasedWeights, WeightFile
from mfr.core.errors import InputError, MissingError

if TYPE_CHECKING:
    import keras

__all__ = ["BACKBONE", "MobileFaceNet"]

#: liguiyuan/mobilefacenet-ncnn's latest commit ("updated detect.cpp ...", 2020-05-14); the four
#: files are unchanged since they were added
_COMMIT = "43631161ecef7567b9871bc711b9fb848629e9bc"
_URL = f"https://raw.githubusercontent.com/liguiyuan/mobilefacenet-ncnn/{_COMMIT}/models/"
SYMBOL, PARAMS = "model-symbol.json", "model-0000.params"
NCNN_PARAM, NCNN_BIN = "mobilefacenet.param", "mobilefacenet.bin"
CHIP = 112
#: photos aligned per call of the face finder and the warp (bounds memory on large caches)
_ALIGN_BATCH = 512


class MobileFaceNet(Backbone):
    facts = BackboneFacts(
        name="mobilefacenet",
        label="MobileFaceNet (InsightFace model-y1-test2, ArcFace, MS1M)",
        short_label="MobileFaceNet",
        input_size=CHIP,
        embedding_size=128,
        n_layers=166,  # len(model.layers), Input included (BatchNormalization kept as layers)
        gradcam_layer="conv_6sep_relu",  # the last map before the global depthwise 7x7: 7x7x512
        preprocessing=(Preprocessing("raw", "RGB", None, None,
                                     "raw RGB 0-255; the network's first layers compute "
                                     "(x - 127.5) * 0.0078125, as its MXNet graph does",
                                     neutral=127.5),),
        weights=ReleasedWeights(
            name="ms1m",
            label="MobileFaceNet pre-trained (InsightFace model-y1-test2, MS1M)",
            files=(
                WeightFile(SYMBOL, _URL + SYMBOL,
                           "967a17dd970632480609caac8b0a809f4784f1caa333a1d801365f7d34517e55",
                           107_943),
                WeightFile(PARAMS, _URL + PARAMS,
                           "b151f97e392e68cb540fb9710a91a574a4187d491eeda77d1c1799ae6dc3b82b",
                           4_115_182),
                WeightFile(NCNN_PARAM, _URL + NCNN_PARAM,
                           "dfea20c1a5c2adef2126296f42771ecf33bfa9a50cbe0f7ca8864c7bd1a4bbeb",
                           20_288),
                WeightFile(NCNN_BIN, _URL + NCNN_BIN,
                           "9638dcfee63785b87a5ab0b0ed9f9dffe93e4b3718e5ea1b537dd5243a661b87",
                           4_091_592),
            ),
            source="InsightFace's MobileFaceNet release (MXNet) and its ncnn conversion, as "
                   f"committed in GitHub liguiyuan/mobilefacenet-ncnn, models/, commit {_COMMIT}",
            licence="InsightFace releases its pretrained models for non-commercial research "
                    "only",
            format="MXNet symbol JSON + NDArray-list .params, mfr.backbones.formats.mxnet",
            cache_name="insightface-mobilefacenet",
            env_dir="MFR_MOBILEFACENET_DIR"),
        settings=("face_box",),
        alignment="ArcFace's five-point template, 112x112, by a similarity transform "
                  "(InsightFace's norm_crop): mfr.data.face_align",
        face_boxes=("cascade", "mtcnn", "crop"),
        min_image_size=32,
        notes=("the 7x7 global depthwise convolution takes exactly a 7x7 map: the network's "
               "input is 112 px whatever the image cache's size",),
    )

    def build(self, config: Any) -> keras.Model:
        """The network from the release's graph, with the released ``.params`` (``ms1m``),
        another ``.params`` file of this graph, or None (random init, seeded by the caller)."""
        from mfr.backbones.formats.mxnet_keras import build_keras_model

        files = self.release_files(progress=False)
        w = config.weights
        params = None if w is None else files[PARAMS] if w == self.facts.weights.name else w
        return build_keras_model(files[SYMBOL], params, input_shape=(CHIP, CHIP, 3),
                                 name=self.name)

    def pretrained_file(self) -> Path:
        return self.release_files(progress=False)[PARAMS]

    def check_weights(self, weights: str | None, progress: bool = True) -> None:
        """The release found (or downloaded) and checked by sha256 -- its graph is needed for
        any weights, random init included --, and a given ``.params`` file read whole."""
        from mfr.backbones.download import WeightsDownloadError
        from mfr.backbones.formats.mxnet import read_params

        try:
            self.release_files(progress=progress)
        except WeightsDownloadError as e:
            raise MissingError(f"MobileFaceNet files unavailable: {e}") from e
        if weights is None or weights == self.facts.weights.name:
            return
        if not Path(weights).is_file():
            raise MissingError(f"{weights}: weights file not found (expected ms1m, none, or an "
                               f"MXNet .params file of MobileFaceNet's graph)")
        read_params(weights)

    def align_faces(self, images: np.ndarray, progress: bool = False,
                    face_box: str | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """112x112 chips warped onto ArcFace's template from five landmarks found as `face_box`
        says (see the module docstring), and per image: ``no_face_detected`` (the fallback
        landmarks), ``failed`` (unreadable: a black chip), ``stage`` (what found the face)."""
        from mfr.core.progress import progress_bar
        from mfr.data.face_align import arcface_chips, template_landmarks
        from mfr.data.face_finding import DEFAULT_STAGES, FAILED, NO_FACE, MtcnnStage, find_faces

        box = face_box or self.facts.face_boxes[0]
        if box not in self.facts.face_boxes:
            raise InputError(f"face_box: {self.name} finds its landmarks with "
                             f"{', '.join(self.facts.face_boxes)}, got {box!r}")
        stages = {"cascade": DEFAULT_STAGES, "mtcnn": (MtcnnStage(),), "crop": ()}[box]
        n = len(images)
        out = np.zeros((n, CHIP, CHIP, 3), np.uint8)
        no_face, failed = np.zeros(n, bool), np.zeros(n, bool)
        stage = np.full(n, "crop" if box == "crop" else NO_FACE, dtype=object)
        starts = range(0, n, _ALIGN_BATCH)
        for s in progress_bar(starts, progress and bool(stages), total=len(starts),
                              desc="faces (ArcFace)"):
            batch = np.asarray(images[s:s + _ALIGN_BATCH])
            if not stages:  # the crop is the face: the template stretched onto it
                h, w = batch.shape[1:3]
                marks = np.broadcast_to(template_landmarks(h, w), (len(batch), 5, 2))
                out[s:s + len(batch)] = arcface_chips(batch, marks)
                continue
            found = find_faces(batch, stages)
            out[s:s + len(batch)] = arcface_chips(batch, found.landmarks)
            st = np.asarray(found.stage, dtype=object)
            stage[s:s + len(batch)] = st
            no_face[s:s + len(batch)] = st == NO_FACE
            failed[s:s + len(batch)] = st == FAILED
        return out, {"no_face_detected": no_face, "failed": failed,
                     "stage": stage.astype(str)}


BACKBONE = MobileFaceNet()
