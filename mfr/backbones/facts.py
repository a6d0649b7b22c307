"""What mfr knows of a face network, as records: its facts in one typed record
(:class:`BackboneFacts`, in the manner of timm's ``default_cfgs``), its preprocessing
(:class:`Preprocessing`, which applies itself) and its released weights (:class:`ReleasedWeights`
of :class:`WeightFile`). Plain data and numpy: the config's checks and choices read them without
Keras, and nothing here imports another part of mfr but its errors; the behaviour is
:class:`mfr.backbones.base.Backbone`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["RANDOM_WEIGHTS_WARNING", "RELEASED", "BackboneFacts", "Preprocessing",
           "ReleasedWeights", "WeightFile", "validate_trainable_layers"]

#: the config's default ``weights`` (the thesis's: VGGFace2): for any backbone, "its released
#: weights" (:meth:`mfr.backbones.base.Backbone.config_defaults` names them)
RELEASED = "vggface2"

#: the warning random initial weights carry into every output (the backbone's label in it)
RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS (weights=None, seed {seed}): this is NOT the pre-trained {label}; the "
    "distances only exercise the pipeline (offline demo) and mean nothing about faces."
)


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 RGB images become the network's float32 input: channels reordered to
    `channel_order`, then ``(x - mean) * scale`` per channel (mean in `channel_order`); a None
    mean or scale is left out (``mean=None, scale=None``: raw 0-255 pixels, the network
    normalises them inside its graph)."""

    name: str  # the config's ``preprocessing`` value
    channel_order: str  # "RGB" | "BGR"
    mean: tuple[float, float, float] | None
    scale: float | None
    doc: str  # one line: what it is and why
    #: the network-input value that stands for "no information" (Grad-CAM's deletion test greys
    #: a region with it): 0, the channel mean the preprocessing subtracted; for raw input that
    #: the network normalises itself, the pixel its normalisation makes 0 (127.5)
    neutral: float = 0.0

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"preprocessing {self.name!r}: channel_order must be RGB or BGR")

    def words(self) -> str:
        """The preprocessing as a report says it."""
        return f"{self.name}: {self.doc}"

    def apply(self, batch: Any) -> Any:
        """Channel-last RGB images (..., 3), uint8 or float in [0, 255] -> float32 network input:
        channels reordered to `channel_order`, then ``(x - mean) * scale`` per channel, each left
        out where None. Numpy in, numpy float32 out; a tensor of the active Keras backend in, a
        tensor out (``keras.ops``)."""
        mean = None if self.mean is None else np.asarray(self.mean, dtype=np.float32)
        if isinstance(batch, np.ndarray | np.generic | list | tuple):
            x = np.asarray(batch).astype(np.float32)
            _check_channels(x.shape)
            if self.channel_order == "BGR":
                x = x[..., ::-1]  # RGB -> BGR
            if mean is not None:
                x = x - mean
            if self.scale is not None:
                x = x * np.float32(self.scale)
            return np.ascontiguousarray(x, dtype=np.float32)
        from keras import ops

        x = ops.cast(batch, "float32")
        _check_channels(x.shape)
        if self.channel_order == "BGR":
            x = ops.flip(x, axis=-1)  # RGB -> BGR
        if mean is not None:
            x = x - ops.convert_to_tensor(mean)
        if self.scale is not None:
            x = x * float(self.scale)
        return x


@dataclass(frozen=True)
class WeightFile:
    """One file of a weights release: where it is fetched from and what it must hash to
    (``sha256`` None: the publisher gives no checksum; the backbone then checks the content)."""

    name: str
    url: str | None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class ReleasedWeights:
    """A backbone's released weights: the ``weights`` value naming them, their files, source,
    licence and format."""

    name: str  # the config's ``weights`` value naming them: "vggface2", "dlib_v1", ...
    label: str  # "SENet50 pre-trained (VGGFace2)"
    files: tuple[WeightFile, ...]
    source: str
    licence: str
    format: str  # the file format, and the module that reads it
    #: the folder under ``$KERAS_HOME/models`` its files are cached in
    cache_name: str = ""
    #: an environment variable naming a folder that holds the files (a copy made by hand)
    env_dir: str | None = None


@dataclass(frozen=True)
class BackboneFacts:
    """Everything mfr knows of a face network, in one record that the code reads."""

    name: str  # the registry name: ``--backbone NAME``
    label: str  # one line for humans
    short_label: str  # table rows and figure ticks: "SENet50 pre-trained"
    input_size: int  # the side, in pixels, of the input the released weights take
    embedding_size: int
    #: ``len(model.layers)``, Input included: what "the last N layers" counts
    n_layers: int
    gradcam_layer: str  # the feature layer Grad-CAM explains
    preprocessing: tuple[Preprocessing, ...]  # the first is the default
    weights: ReleasedWeights
    #: the config fields (beyond weights, image_size and the preprocessing) its outputs
    #: depend on: SENet50's pooling, dlib's face_box
    settings: tuple[str, ...] = ()
    #: how it takes faces: None (the cached image as it is) or words naming its alignment
    alignment: str | None = None
    #: the ``face_box`` values its alignment takes (where its landmarks are found); the first
    #: is the default. Empty for a backbone without alignment.
    face_boxes: tuple[str, ...] = ()
    #: the smallest ``image_size`` a config may give it (pixels)
    min_image_size: int = 32
    #: what "the last N layers" leaves frozen, as messages say it
    frozen: str = "BatchNormalization frozen"
    #: the distance its own users compare with: ``sum_squared`` (the thesis's, of unit
    #: embeddings) or ``euclidean_raw`` (Euclidean on the unnormalised output, dlib's)
    default_distance: str = "sum_squared"
    #: its output is normalised by the network itself
    normalised: bool = False
    #: (distance, value, source) of the decision threshold its publisher documents, or None
    documented_threshold: tuple[str, float, str] | None = None
    #: a run's trained layers: the file and its format
    saved_as: str = "final_trainable.h5: the trained layers by Keras layer name, legacy HDF5"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.preprocessing:
            raise ValueError(f"backbone {self.name!r}: at least one preprocessing")
        if self.alignment is not None and not self.face_boxes:
            raise ValueError(f"backbone {self.name!r}: an alignment needs its face_boxes")

    @property
    def preprocessing_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.preprocessing)


def validate_trainable_layers(n: Any, n_layers: int = 287, backbone: str | None = None) -> int:
    """N as an int in 1..n_layers (default: SENet50's 287, the thesis's network), else one
    InputError (naming the backbone when given)."""
    who = f" ({backbone})" if backbone else ""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise InputError(f"trainable layers N must be an integer in 1..{n_layers}, got "
                         f"{n!r}{who}")
    if not 1 <= int(n) <= n_layers:
        raise InputError(f"trainable layers N must be in 1..{n_layers} (the core's layers), got "
                         f"{n}{who}")
    return int(n)


def _check_channels(shape) -> None:
    if len(shape) == 0 or shape[-1] != 3:
        raise InputError(f"expected channel-last RGB images (..., 3), got shape {tuple(shape)}")
