"""keras-vggface's layer names and their Keras 3 spellings.

keras-vggface named SENet50's weighted layers like ``conv1/7x7_s2/bn``; Keras 3 forbids '/' in
layer names, so mfr's model uses ``conv1_7x7_s2_bn``. The released ``.h5`` files are keyed by
the original names, so every weighted layer's original name is listed here, from the same
stage table the builder uses, never guessed back from the Keras 3 name.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["keras_name", "vggface_names"]


def keras_name(vggface: str) -> str:
    """keras-vggface layer name -> the Keras 3 name used by mfr ('/' -> '_')."""
    return vggface.replace("/", "_")


def _weighted_names(stages: Iterable[tuple[int, int, tuple[int, int, int]]]) -> list[str]:
    """The weighted layers' keras-vggface names, in creation order."""
    names = ["conv1/7x7_s2", "conv1/7x7_s2/bn"]
    for stage, n_blocks, _ in stages:
        for block in range(1, n_blocks + 1):
            p = f"conv{stage}_{block}"
            for conv in ("1x1_reduce", "3x3", "1x1_increase"):
                names += [f"{p}_{conv}", f"{p}_{conv}/bn"]
            names += [f"{p}_1x1_down", f"{p}_1x1_up"]
            if block == 1:
                names += [f"{p}_1x1_proj", f"{p}_1x1_proj/bn"]
    return names


def vggface_names(stages: Iterable[tuple[int, int, tuple[int, int, int]]]) -> dict[str, str]:
    """Keras 3 layer name -> keras-vggface name, for every weighted layer of an SENet built
    from `stages` (``(stage, blocks, filters)`` rows, as :data:`mfr.backbones.vggface.senet50.STAGES`)."""
    return {keras_name(n): n for n in _weighted_names(stages)}
