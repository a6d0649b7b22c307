"""The face networks a study can fine-tune, behind one registry (in the manner of timm's
``_registry.py`` + ``default_cfgs``).

A backbone is a module of this package holding one :class:`~mfr.backbones.base.Backbone`
object, ``BACKBONE``: its facts in one typed record (:class:`~mfr.backbones.base.BackboneFacts`:
input size, channel order, mean and scale or "inside the graph", embedding size, the layers
"the last N" counts, the Grad-CAM layer, its face alignment, its released weights with their
source, sha256 and licence) and its behaviour as methods (build, preprocess, align,
check_weights, pretrained_file, save and load trained layers, embedder).
:data:`BACKBONES` maps a name to that module: a new network is one module and one line here
(plus a reader in :mod:`mfr.backbones.formats` where its weights come in a new format).

:func:`get_backbone` resolves a name once; the steps take the object from there on. Backbone
modules import Keras only inside their methods, so the config checks and ``mfr --help`` read
the facts without it. The package's layers, bottom up: :mod:`~mfr.backbones.facts` (records),
this registry, the config (:mod:`mfr.core.config` reads the facts), :mod:`~mfr.backbones.base`
(the behaviour: it reads configs and run folders), the backbone modules.
"""

from __future__ import annotations

import importlib
from typing import Any

from mfr.backbones.facts import BackboneFacts, validate_trainable_layers
from mfr.core.errors import InputError

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "BackboneFacts", "backbone_names", "get_backbone",
           "validate_trainable_layers"]

#: name -> module of this package holding ``BACKBONE``
BACKBONES: dict[str, str] = {
    "senet50": "mfr.backbones.senet50",
    "dlib_resnet": "mfr.backbones.dlib_resnet",
    "mobilefacenet": "mfr.backbones.mobilefacenet",
}

#: the thesis's network: a run record without a ``backbone`` (made before there were others)
#: is one of its runs
DEFAULT_BACKBONE = "senet50"

_RESOLVED: dict[str, Any] = {}


def backbone_names() -> list[str]:
    """The registered backbones, in registry order (the CLI's choices)."""
    return list(BACKBONES)


def get_backbone(name: Any) -> Any:
    """The backbone registered as `name` (a :class:`mfr.backbones.base.Backbone`; one given
    is returned as it is); one InputError line lists the known names. The registry imports
    the backbone modules by name (their ``BACKBONE``), so it stands below them and the config."""
    if isinstance(getattr(name, "facts", None), BackboneFacts):
        return name
    if not isinstance(name, str) or name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")
    if name not in _RESOLVED:
        backbone = importlib.import_module(BACKBONES[name]).BACKBONE
        if backbone.name != name:
            raise InputError(f"{BACKBONES[name]}: its BACKBONE is named {backbone.name!r}, "
                             f"registered as {name!r}")
        _RESOLVED[name] = backbone
    return _RESOLVED[name]
