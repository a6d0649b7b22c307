"""YAML profiles (``configs/*.yaml``, a recipes profile, a user's own): one strict reader.

A profile is a small mapping of settings written by hand. :func:`read_mapping` reads it as
text (:func:`mfr.core.readers.text.read_text`: UTF-8, a size bound, no NUL byte) and parses
it with :class:`StrictLoader`, YAML's safe loader less what a profile never needs and an
attacker or a slip uses:

- anchors and aliases (``&a`` / ``*a``): refused where they appear. A 374-byte "billion
  laughs" document of nested aliases expands to gigabytes; a profile has no use for them.
- a key given twice in one mapping: refused naming both lines (YAML would keep the last
  value silently).
- merge keys (``<<``), which only make sense with aliases.

Every message names the file and the line, and quotes at most a short excerpt of a value
(:func:`mfr.core.readers.text.excerpt`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mfr.core.errors import InputError
from mfr.core.readers.text import excerpt, read_text

__all__ = ["MAX_PROFILE_BYTES", "StrictLoader", "parse_mapping", "read_mapping"]

#: The largest profile mfr reads: the largest in configs/ is about 3 KB.
MAX_PROFILE_BYTES = 256 << 10


class _Refused(yaml.MarkedYAMLError):
    """A construct the strict loader refuses, at its place in the file."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses anchors, aliases, merge keys and repeated keys."""

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201 - PyYAML's signature
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(None, None, f"an alias (*{excerpt(event.anchor, 20)}): profiles "
                                       f"take none, write the value out", event.start_mark)
        if getattr(event, "anchor", None) is not None:
            raise _Refused(None, None, f"an anchor (&{excerpt(event.anchor, 20)}): profiles "
                                       f"take none", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201
        seen: dict[Any, int] = {}
        if isinstance(node, yaml.MappingNode):
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Refused(None, None, "a merge key (<<): profiles take none",
                                   key_node.start_mark)
                try:
                    key = self.construct_object(key_node, deep=True)
                    hash(key)
                except TypeError:  # a list or a mapping as a key
                    raise _Refused(None, None, f"a key that is not a name ({key_node.tag})",
                                   key_node.start_mark) from None
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise _Refused(None, None, f"key {excerpt(key, 40)} given twice (first on "
                                               f"line {seen[key]})", key_node.start_mark)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def parse_mapping(text: str, path: str | Path, what: str = "a mapping of config keys",
                  string_keys: bool = True) -> dict[str, Any]:
    """`text` (a profile's) as a mapping; InputError naming `path` and the line of a syntax
    error, of a refused construct (see the module docstring) or, with `string_keys`, of a
    top-level key that is not a name. An empty document is an empty mapping."""
    loader = None
    try:
        loader = StrictLoader(text)  # its reader refuses control characters at once
        root = loader.get_single_node()
        loaded = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        problem = " ".join(str(problem).split())[:160]
        raise InputError(f"{path}:{where} not valid YAML ({problem})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be {what}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InputError(f"{path}: expected {what}, got {type(loaded).__name__}")
    if string_keys:
        for key_node, _ in root.value:
            if key_node.tag != "tag:yaml.org,2002:str":  # 1, null, true, a list ...
                raise InputError(f"{path}: line {key_node.start_mark.line + 1}: config keys are "
                                 f"names, got {excerpt(key_node.value, 40)}")
    return loaded


def read_mapping(path: str | Path, expected: str = "a YAML profile (a mapping of config keys)",
                 max_bytes: int = MAX_PROFILE_BYTES) -> dict[str, Any]:
    """The mapping in YAML file `path`: :func:`mfr.core.readers.text.read_text` then
    :func:`parse_mapping`."""
    return parse_mapping(read_text(path, expected, max_bytes), path)
