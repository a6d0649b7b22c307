"""The tables of a study's evaluation: verification, thresholds, identification, and their
Markdown with intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mfr.core.errors import InputError
from mfr.evaluation.pair_sets import EVAL_DISTANCES

# --------------------------------------------------------------------------- tables

_CI_KEYS = ("auc", "eer", "fnmr_at_fmr_1pct", "fnmr_at_fmr_0_1pct")
_VALUE_KEYS = ("gmean", "imean", "median_genuine", "median_impostor", "gap", "fisher")


def verification_table(settings: Mapping[str, Any], distances: Sequence[str] = EVAL_DISTANCES,
                       split: str = "test") -> pd.DataFrame:
    """One row per setting and distance: AUC, EER, FNMR at FMR 1% / 0.1% with their interval
    bounds, GMean, IMean, medians, gap, Fisher ratio, pair counts, null_reason."""
    rows = []
    for entry in settings.values():
        by = entry["splits"].get(split)
        if not by:
            continue
        for dist in distances:
            m = by[dist]
            row = {"setting": entry["label"], "distance": dist}
            for k in _CI_KEYS:
                ci = m.get("ci", {}).get(k, {})
                row.update({k: m[k], f"{k}_low": ci.get("low"), f"{k}_high": ci.get("high")})
            row.update({k: m[k] for k in _VALUE_KEYS})
            row.update(n_genuine=m["n_genuine"], n_impostor=m["n_impostor"],
                       null_reason=m["null_reason"] or "")
            rows.append(row)
    return pd.DataFrame(rows)


def threshold_table(settings: Mapping[str, Any], distances: Sequence[str] = EVAL_DISTANCES
                    ) -> pd.DataFrame:
    """One row per setting and distance: the validation threshold and its test accuracy,
    FMR and FNMR."""
    rows = []
    for entry in settings.values():
        th = entry["threshold"]
        for dist in distances:
            t = th.get(dist, {"threshold": None, "null_reason": th.get("null_reason")})
            val, test = t.get("val", {}), t.get("test", {})
            rows.append({"setting": entry["label"], "distance": dist, "rule": t.get("rule"),
                         "threshold": t["threshold"], "val_fmr": val.get("fmr"),
                         "val_fnmr": val.get("fnmr"), "test_accuracy": test.get("accuracy"),
                         "test_fmr": test.get("fmr"), "test_fnmr": test.get("fnmr"),
                         "null_reason": t.get("null_reason") or ""})
    return pd.DataFrame(rows)


def identification_table(settings: Mapping[str, Any], distances: Sequence[str] = EVAL_DISTANCES
                         ) -> pd.DataFrame:
    """One row per setting and distance: rank-1 and rank-5 identification with intervals."""
    rows = []
    for entry in settings.values():
        ident = entry.get("identification", {})
        for dist in distances:
            r = ident.get(dist, {"null_reason": ident.get("null_reason")})
            row = {"setting": entry["label"], "distance": dist}
            for k in ("rank_1", "rank_5"):
                ci = r.get("ci", {}).get(k, {})
                row.update({k: r.get(k), f"{k}_low": ci.get("low"), f"{k}_high": ci.get("high")})
            row.update(n_probes=r.get("n_probes"), n_gallery_subjects=r.get("n_gallery_subjects"),
                       null_reason=r.get("null_reason") or "")
            rows.append(row)
    return pd.DataFrame(rows)


def _fmt(v, digits: int = 4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and v != v) else f"{v:.{digits}f}"


def _with_ci(row: Mapping[str, Any], key: str) -> str:
    lo, hi = row.get(f"{key}_low"), row.get(f"{key}_high")
    if row.get(key) is None or lo is None or (isinstance(lo, float) and lo != lo):
        return _fmt(row.get(key))
    return f"{_fmt(row[key])} [{_fmt(lo)}, {_fmt(hi)}]"


def table_markdown(table: pd.DataFrame, kind: str, first: str = "setting") -> str:
    """A verification / thresholds / identification table as Markdown (values with their 95%
    intervals in brackets); `first` names the first column."""
    if table.empty:
        return "(nothing to show)\n"
    if kind == "verification":
        cols = {"setting": "setting", "distance": "distance", "auc": "AUC", "eer": "EER",
                "fnmr_at_fmr_1pct": "FNMR@FMR1%", "fnmr_at_fmr_0_1pct": "FNMR@FMR0.1%"}
        rows = [[r["setting"], r["distance"], *(_with_ci(r, k) for k in _CI_KEYS),
                 _fmt(r["gmean"]), _fmt(r["imean"]), _fmt(r["fisher"], 3),
                 f"{r['n_genuine']} / {r['n_impostor']}", r["null_reason"]]
                for r in table.to_dict("records")]
        head = [*cols.values(), "GMean", "IMean", "Fisher", "genuine / impostor", "note"]
    elif kind == "thresholds":
        rows = [[r["setting"], r["distance"], r["rule"] or "", _fmt(r["threshold"]),
                 _fmt(r["val_fmr"]), _fmt(r["val_fnmr"]), _fmt(r["test_accuracy"]),
                 _fmt(r["test_fmr"]), _fmt(r["test_fnmr"]), r["null_reason"]]
                for r in table.to_dict("records")]
        head = ["setting", "distance", "rule", "threshold", "val FMR", "val FNMR",
                "test accuracy", "test FMR", "test FNMR", "note"]
    elif kind == "identification":
        rows = [[r["setting"], r["distance"], _with_ci(r, "rank_1"), _with_ci(r, "rank_5"),
                 r["n_probes"] if r["n_probes"] is not None else "n/a",
                 r["n_gallery_subjects"] if r["n_gallery_subjects"] is not None else "n/a",
                 r["null_reason"]] for r in table.to_dict("records")]
        head = ["setting", "distance", "rank-1", "rank-5", "probes", "gallery subjects", "note"]
    elif kind == "seeds":
        rows = [[r["setting"], r["statistic"], r["seeds"], str(r["n"]),
                 f"{_fmt(r['mean'])} ± {_fmt(r['sd'])}", _fmt(r["min"]), _fmt(r["max"]),
                 f"{_fmt(r['ci_value'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
                 if r["ci_low"] is not None and r["ci_low"] == r["ci_low"]
                 else _fmt(r["ci_value"])]
                for r in table.to_dict("records")]
        seed = table["ci_seed"].iloc[0]
        head = ["setting", "statistic (test pairs)", "seeds", "n", "mean ± sd", "min", "max",
                f"seed {seed}: value [95% subject-bootstrap CI]"]
    else:
        raise InputError(f"unknown table kind {kind!r}")
    head[0] = first
    return pd.DataFrame(rows, columns=head).to_markdown(index=False, disable_numparse=True) + "\n"


