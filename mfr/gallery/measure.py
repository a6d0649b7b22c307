"""Open-set identification of a gallery measured as NIST FRVT 1:N measures it (NISTIR 8271):
the searches of probes whose identities are known, as :class:`mfr.evaluation.open_set.Searches`.

A probe is *mated* when its identity is among those meant to be enrolled (`enrolled`), whether
or not any of that identity's photos made a template, and *non-mated* otherwise. A probe that
could not be searched (no face found under ``no_face="skip"``, unreadable) returns no candidate:
a mated one is a miss at every rank and threshold (NIST counts a failure to make a template as
a miss), a non-mated one is never a false positive. Each searched probe is ranked against every
identity that has a template (a full ranking: rank-k and the CMC are known at every rank).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mfr.core.errors import InputError

__all__ = ["gallery_searches"]


def gallery_searches(gallery: Any, embedded: Any, probe_subjects: Sequence[str],
                     enrolled: Sequence[str], method: str = "exact") -> Any:
    """The :class:`~mfr.evaluation.open_set.Searches` of the probes `embedded`
    (:class:`mfr.gallery.photos.Embedded`) in `gallery`, each probe's identity in
    `probe_subjects` (see the module docstring)."""
    from mfr.evaluation.open_set import Searches, searches_from_candidates

    subjects = np.asarray(probe_subjects, dtype=str).ravel()
    if len(subjects) != len(embedded.status):
        raise InputError(f"{len(embedded.status)} probes but {len(subjects)} identities")
    names = np.unique(np.asarray(enrolled, dtype=str))
    n = len(subjects)
    mated = np.isin(subjects, names)
    rank = np.zeros(n, np.int64)
    mate_d = np.where(mated, np.inf, np.nan)
    top = np.full(n, np.inf)
    ok = embedded.ok
    k = len({str(i) for i in gallery.templates()[2]})
    if ok.any() and k:
        t = gallery.search(embedded.vectors[ok], k, norms=embedded.norms[ok], method=method)
        s = searches_from_candidates(t.identities, t.distance, subjects[ok], names)
        rank[ok], mate_d[ok], top[ok] = s.mate_rank, s.mate_distance, s.top_distance
    # every rank is known: each searched probe ranks every identity with a template, and an
    # enrolled identity without one is found at no rank
    return Searches(mated, rank, mate_d, top, len(names), len(names))
