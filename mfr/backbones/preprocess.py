"""Input preprocessing, computed from a backbone's facts (:class:`mfr.backbones.base.Preprocessing`).

uint8 (or float in [0, 255]) RGB images, channel-last, become float32 network input: channels
reordered to the record's ``channel_order``, then ``(x - mean) * scale`` per channel, each
left out where the record says None. The modes the registered backbones take:

- ``thesis`` (SENet50): the thesis's pipeline: no flip; keras-vggface's BGR means (91.4953,
  103.8827, 131.0912) subtracted from the R, G, B channels in that order (the network sees
  RGB). Needed to reproduce Table 5.1.
- ``vggface2`` (SENet50): keras-vggface ``preprocess_input(version=2)``, as the released weights
  were trained: RGB -> BGR, then the BGR means.
- ``dlib`` (dlib's ResNet): ``(RGB - mean) / 256`` on its 150x150 face chips (exact: 1/256 is a
  power of two, so the product is the quotient dlib computes).
- ``raw`` (InsightFace's MobileFaceNet): float32 RGB pixels as they are; the network's first
  layers compute ``(x - 127.5) * 0.0078125`` themselves.

Each mode is a backbone's :class:`~mfr.backbones.facts.Preprocessing`, which applies itself
(numpy arrays in, numpy float32 out; tensors of the active Keras backend in, tensors out).
"""

from __future__ import annotations

from typing import Any

from mfr.core.errors import InputError

__all__ = ["preprocess", "preprocessing_modes"]


def preprocessing_modes() -> dict[str, Any]:
    """Every registered backbone's preprocessing records, by name (the config's choices)."""
    from mfr.backbones import backbone_names, get_backbone

    out: dict[str, Any] = {}
    for name in backbone_names():
        for p in get_backbone(name).facts.preprocessing:
            out.setdefault(p.name, p)
    return out


def preprocess(batch: Any, mode: Any = "thesis") -> Any:
    """`batch` preprocessed by `mode`: a :class:`~mfr.backbones.base.Preprocessing` record, or
    the name of one of the registered backbones' (default ``thesis``, SENet50's)."""
    if isinstance(mode, str):
        modes = preprocessing_modes()
        if mode not in modes:
            raise InputError(f"mode must be one of {tuple(modes)}, got {mode!r}")
        mode = modes[mode]
    return mode.apply(batch)
