"""InsightFace's MobileFaceNet run by ncnn (PyPI ``ncnn``) on its ncnn conversion
(``mobilefacenet.param``/``.bin``): the reference implementation the Keras port
(:mod:`mfr.backbones.mobilefacenet`) is checked against, and a baseline embedder of its own.

As an embedder it takes the image cache's photos and aligns them as the Keras port does (the
backbone's :meth:`~mfr.backbones.mobilefacenet.MobileFaceNet.align_faces`: five landmarks found
with its ``face_box``, ArcFace's 112x112 warp), so both see the same chips; ``face_box="crop"``
at ``image_size=112`` passes faces already aligned to the template (e.g. mlfw-dev's photos)
through unchanged. :func:`ncnn_embed` takes aligned chips directly. The ncnn graph computes ``(x - 127.5) * 0.007812`` itself (the MXNet graph's
0.0078125 as printf's ``%f`` wrote it) and returns the blob ``fc1``, the 128-d embedding. ncnn
runs in float32 on the CPU: Vulkan, fp16/bf16 storage and arithmetic and int8 are all off, so
the only differences from MXNet are float32 summation order and that scale. The embeddings are
L2-normalised; their raw lengths are kept in ``norms``. Licence of the weights: InsightFace's
pretrained models are for non-commercial research only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mfr.backbones.embedders.embedder import Embedder, check_images
from mfr.core.errors import InputError, MissingError

__all__ = ["NCNN_OFF", "NcnnMobileFaceNetEmbedder", "ncnn_embed", "ncnn_net"]

IMAGE_SIZE = 112
DIM = 128
INPUT_BLOB, OUTPUT_BLOB = "data", "fc1"
#: the ncnn options switched off: everything that is not plain float32 on the CPU
NCNN_OFF = ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
            "use_bf16_storage", "use_bf16_packed", "use_int8_inference", "use_int8_storage",
            "use_int8_arithmetic", "use_int8_packed")


def _ncnn():
    try:
        import ncnn
    except ImportError as e:
        raise InputError(f"the ncnn MobileFaceNet embedder needs the package ncnn "
                         f"(pip install 'mfr[baselines]'): {e}") from None
    return ncnn


def ncnn_net(param: str | Path, bin_path: str | Path, threads: int = 1):
    """An ``ncnn.Net`` with `param` and `bin_path` loaded, float32 CPU only (:data:`NCNN_OFF`),
    `threads` threads; a missing or unreadable file is a one-line error naming it."""
    ncnn = _ncnn()
    for p in (param, bin_path):
        if not Path(p).is_file():
            raise MissingError(f"{p}: file not found (expected MobileFaceNet's ncnn "
                               f"mobilefacenet.param/.bin)")
    net = ncnn.Net()
    for option in NCNN_OFF:  # before loading: ncnn picks its layer implementations then
        if hasattr(net.opt, option):
            setattr(net.opt, option, False)
    net.opt.num_threads = int(threads)
    if net.load_param(str(param)) != 0:
        raise InputError(f"{param}: expected an ncnn .param file ncnn can load")
    if net.load_model(str(bin_path)) != 0:
        raise InputError(f"{bin_path}: expected the ncnn .bin file of {Path(param).name}")
    return net


def _run(net, image: np.ndarray) -> np.ndarray | None:
    """One 112x112 uint8 RGB image -> its raw fc1 (128,) float32, or None when ncnn fails."""
    ncnn = _ncnn()
    h, w = image.shape[:2]
    mat = ncnn.Mat.from_pixels(np.ascontiguousarray(image), ncnn.Mat.PixelType.PIXEL_RGB, w, h)
    ex = net.create_extractor()
    if ex.input(INPUT_BLOB, mat) != 0:
        return None
    ret, out = ex.extract(OUTPUT_BLOB)
    if ret != 0:
        return None
    v = np.array(out, dtype=np.float32).reshape(-1)
    return v if v.shape == (DIM,) else None


def ncnn_embed(aligned_uint8: np.ndarray, param: str | Path, bin_path: str | Path,
               threads: int = 1, net=None) -> np.ndarray:
    """(N, 112, 112, 3) uint8 RGB aligned faces -> (N, 128) float32 raw embeddings (ncnn's
    ``fc1``, not normalised). `net` (:func:`ncnn_net`) is reused when given. A row ncnn cannot
    compute raises an InputError naming it (the embedder flags it instead)."""
    check_images(aligned_uint8, IMAGE_SIZE, "ncnn MobileFaceNet")
    net = net if net is not None else ncnn_net(param, bin_path, threads)
    out = np.zeros((len(aligned_uint8), DIM), np.float32)
    for i, image in enumerate(aligned_uint8):
        v = _run(net, image)
        if v is None:
            raise InputError(f"ncnn MobileFaceNet: image {i}: ncnn did not produce blob "
                             f"{OUTPUT_BLOB!r} of {DIM} values")
        out[i] = v
    return out


class NcnnMobileFaceNetEmbedder(Embedder):
    """MobileFaceNet through ncnn, one image at a time, on the chips the Keras port sees.

    Args:
        param, bin_path: the ncnn files; None: the backbone's release
            (:meth:`~mfr.backbones.base.Backbone.release_files`: ``$MFR_MOBILEFACENET_DIR``, the
            cache, or a download).
        threads: ncnn's threads (1: one image on one core, as a phone runs it).
        progress: show the download's progress.
        image_size: side of the square images it takes (the image cache's; 160: RMFRD's and
            MFR2's crops, unresized; 112 with ``face_box="crop"``: chips already aligned).
        face_box: how the five landmarks are found (the backbone's ``face_boxes``; default its
            first, the cascade).
    """

    name = "mobilefacenet_ncnn"

    def __init__(self, param: str | Path | None = None, bin_path: str | Path | None = None,
                 threads: int = 1, progress: bool = True, image_size: int = 160,
                 face_box: str | None = None) -> None:
        super().__init__()
        from mfr.backbones import get_backbone

        self.backbone = get_backbone("mobilefacenet")
        boxes = self.backbone.facts.face_boxes
        self.face_box = face_box or boxes[0]
        if self.face_box not in boxes:
            raise InputError(f"face box must be one of {', '.join(boxes)}, got {face_box!r}")
        self.image_size = int(image_size)
        if (param is None) != (bin_path is None):
            raise InputError("give both param and bin_path (ncnn's two files), or neither")
        if param is None:
            files = self.backbone.release_files(progress=progress)
            param, bin_path = files["mobilefacenet.param"], files["mobilefacenet.bin"]
        self.param, self.bin_path, self.threads = Path(param), Path(bin_path), int(threads)
        self._net = ncnn_net(self.param, self.bin_path, self.threads)

    def embed(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from mfr.core.progress import progress_bar

        check_images(images, self.image_size, "ncnn MobileFaceNet embedder")
        chips, flags = self.backbone.align_faces(np.asarray(images), progress, self.face_box)
        n = len(chips)
        out = np.zeros((n, DIM), np.float32)
        failed = np.asarray(flags.get("failed", np.zeros(n, bool)), bool).copy()
        for i in progress_bar(range(n), progress, total=n, desc=self.name):
            v = None if failed[i] else _run(self._net, chips[i])
            if v is None:  # a zero row, flagged, as the other embedders do
                failed[i] = True
            else:
                out[i] = v
        no_face = np.asarray(flags.get("no_face_detected", np.zeros(n, bool)), bool)
        result = self._finish(out, no_face & ~failed, failed)
        if "stage" in flags:
            self.flags["stage"] = np.asarray(flags["stage"])
        return result

    def describe(self) -> dict[str, Any]:
        ncnn = _ncnn()
        return {
            "name": self.name,
            "backbone": "mobilefacenet",
            "label": "InsightFace MobileFaceNet (model-y1-test2), ncnn",
            "weights": {"param": str(self.param), "bin": str(self.bin_path)},
            "weights_licence": "InsightFace pretrained models: non-commercial research only",
            "runtime": f"ncnn {getattr(ncnn, '__version__', '?')}, CPU float32 "
                       f"({', '.join(NCNN_OFF)} off), {self.threads} thread(s)",
            "preprocessing": "inside the ncnn graph: (RGB - 127.5) * 0.007812 (MXNet's 0.0078125 "
                             "as printf %f wrote it)",
            "alignment": self.backbone.facts.alignment,
            "face_box": self.face_box,
            "image_size": self.image_size,
            "dim": DIM,
            "normalisation": "L2 (the 128-d fc1 unit-normalised; raw lengths kept)",
            "n_images": self.n_images,
            "n_no_face_detected": self.n_no_face,
            "n_failed": self.n_failed,
        }
