"""InsightFace's MobileFaceNet run by ncnn (PyPI ``ncnn``) on its ncnn conversion
(``mobilefacenet.param``/``.bin``): the reference implementation the Keras port
(:mod:`mfr.backbones.mobilefacenet`) is checked against, and a baseline embedder of its own.

It takes 112x112 uint8 RGB faces already aligned to ArcFace's five-point template (e.g.
mlfw-dev's photos); the ncnn graph computes ``(x - 127.5) * 0.007812`` itself (the MXNet graph's
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

from mfr.backbones.embedders import Embedder, check_images
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
    """MobileFaceNet through ncnn, one image at a time.

    Args:
        param, bin_path: the ncnn files; None: :func:`mfr.backbones.mobilefacenet_weights.mobilefacenet_files`
            (``$MFR_MOBILEFACENET_DIR``, the cache, or a download).
        threads: ncnn's threads (1: one image on one core, as a phone runs it).
        progress: show the download's progress.
    """

    name = "mobilefacenet_ncnn"
    image_size = IMAGE_SIZE

    def __init__(self, param: str | Path | None = None, bin_path: str | Path | None = None,
                 threads: int = 1, progress: bool = True) -> None:
        super().__init__()
        if (param is None) != (bin_path is None):
            raise InputError("give both param and bin_path (ncnn's two files), or neither")
        if param is None:
            from mfr.backbones.mobilefacenet_weights import mobilefacenet_files

            files = mobilefacenet_files(progress=progress)
            param, bin_path = files["mobilefacenet.param"], files["mobilefacenet.bin"]
        self.param, self.bin_path, self.threads = Path(param), Path(bin_path), int(threads)
        self._net = ncnn_net(self.param, self.bin_path, self.threads)

    def embed(self, images: np.ndarray, progress: bool = False) -> np.ndarray:
        from mfr.core.progress import progress_bar

        check_images(images, IMAGE_SIZE, "ncnn MobileFaceNet embedder")
        n = len(images)
        out = np.zeros((n, DIM), np.float32)
        failed = np.zeros(n, bool)
        for i in progress_bar(range(n), progress, total=n, desc=self.name):
            v = _run(self._net, images[i])
            if v is None:  # a zero row, flagged, as the other embedders do
                failed[i] = True
            else:
                out[i] = v
        return self._finish(out, np.zeros(n, bool), failed)

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
            "alignment": "none here: 112x112 faces aligned to ArcFace's five-point template",
            "image_size": IMAGE_SIZE,
            "dim": DIM,
            "normalisation": "L2 (the 128-d fc1 unit-normalised; raw lengths kept)",
            "n_images": self.n_images,
            "n_failed": self.n_failed,
        }
