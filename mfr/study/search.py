"""Hyperparameters chosen honestly: on subjects that neither training nor the test ever sees.

The thesis's validation pairs are drawn from the same pairs (so the same subjects, often the
same images) as its training pairs: a setting that memorises the training subjects looks best
on them. So the search splits the partition's **train+validation subjects** once more, exactly
as the partition splits a dataset (the same protocol, seed and fractions: sorted subjects, the
first ``train_val_fraction`` to train on, the rest held out): it trains on the inner training
pairs and scores each setting on the inner held-out subjects' pairs. The test subjects are
never read. The chosen setting is then trained on the whole train+validation split as usual
(a profile of its own) and evaluated once on the test pairs.

Searched: the backbone's face box (its pre-trained embeddings, when it aligns faces), then the
optimizer x learning rate grid, each scored after every epoch count in ``epochs`` (one run per
grid point, resumed from its checkpoint to the next count). Chosen: the highest ROC AUC of the
held-out subjects' pairs (ties: the lower EER, then the fewer epochs, then the grid's order).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mfr.core.config import StudyConfig
from mfr.core.errors import InputError

__all__ = ["inner_partition", "search", "score_run"]

#: the split of the inner partition that holds the held-out training subjects
HELD_OUT = "test"
FLOAT_FORMAT = "%.6f"
SCORES = ("auc", "eer", "fnmr_at_fmr_1pct", "median_genuine", "median_impostor", "gap", "pairs")


def inner_partition(config: StudyConfig, out_dir: str | Path, force: bool = False):
    """The partition of the train+validation subjects of ``config``'s partition alone, written
    to `out_dir` as `mfr partition` writes one (its run.json says ``inner``): its
    ``train``/``val`` pairs come from the first ``train_val_fraction`` of those subjects, its
    ``test`` pairs from the rest (the held-out subjects a search scores on). The dataset's test
    subjects are not in it."""
    from mfr.study.steps import partition_step

    return partition_step(config, out_dir, force=force, inner=True)


def score_run(run_dir: str | Path, split: str = HELD_OUT) -> dict[str, Any]:
    """ROC AUC, EER, FNMR at FMR 1%, the medians and gap of one split of a run's
    ``distances.csv`` (the thesis's distance)."""
    from mfr.evaluation.metrics import verification_metrics

    d = pd.read_csv(Path(run_dir) / "distances.csv")
    d = d[d["split"] == split]
    m = verification_metrics(d["sum_squared"].to_numpy(), d["label"].to_numpy())
    return {"auc": m["auc"], "eer": m["eer"], "fnmr_at_fmr_1pct": m["fnmr_at_fmr_1pct"],
            "median_genuine": m["median_genuine"], "median_impostor": m["median_impostor"],
            "gap": m["median_impostor"] - m["median_genuine"], "pairs": len(d)}


def _read_ledger(path: Path) -> dict[str, Any]:
    """The scores a search recorded (a damaged file is scored again, not trusted)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _best(rows: pd.DataFrame) -> pd.Series:
    order = rows.assign(_neg_auc=-rows["auc"], _row=np.arange(len(rows)))
    sort = ["_neg_auc", "eer"] + (["epochs"] if "epochs" in rows else []) + ["_row"]
    return order.sort_values(sort, kind="stable").iloc[0]


def search(config: StudyConfig, out_dir: str | Path, n: int,
           optimizers: Sequence[str] = ("sgd", "adam"),
           learning_rates: Sequence[float] = (1e-5, 1e-4, 1e-3),
           epochs: Sequence[int] = (2, 4, 8), face_boxes: Sequence[str] | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Search `config`'s face box (where its backbone aligns faces), optimizer, learning rate
    and epochs for fine-tuning the last `n` layers, scored on held-out training subjects
    (:func:`inner_partition`). Writes under `out_dir`: ``partition/`` (the inner partition),
    ``baseline_<box>/``, ``train_<optimizer>_lr<rate>/`` (run folders; a rerun skips what is
    done), ``face_box.csv``, ``search.csv`` and ``search.md``; returns the chosen values."""
    from mfr.backbones import get_backbone
    from mfr.core.outputs import write_csv, write_json, write_text
    from mfr.core.provenance import claim, complete
    from mfr.core.run_record import read_run
    from mfr.study.steps import embed_step, train_step

    backbone = get_backbone(config.backbone)
    n = backbone.check_trainable_layers(n)[0]
    epochs = sorted({int(e) for e in epochs})
    if not epochs or epochs[0] < 1:
        raise InputError(f"epochs must be counts >= 1, got {list(epochs)}")
    known = StudyConfig.__dataclass_fields__["optimizer"].metadata["choices"]
    bad = sorted(set(optimizers) - set(known))
    if bad or not optimizers or not learning_rates:
        raise InputError(f"optimizers must be some of {list(known)} (got {list(optimizers)}) "
                         f"and learning rates a non-empty list (got {list(learning_rates)})")
    for lr in learning_rates:
        config.replace(learning_rate=float(lr))  # each checked as the config checks it
    out = Path(out_dir)
    fp = {"config": config.to_dict(), "n": n, "optimizers": list(optimizers),
          "learning_rates": [float(x) for x in learning_rates], "epochs": epochs,
          "face_boxes": list(face_boxes) if face_boxes else None}
    _adopt_record(out, fp)  # a search folder made before `mfr search` claimed its folder
    claim(out, "search", fp, config=config, reopen=True)  # another command's folder: refused
    pairs, cache = out / "partition", out / "cache"
    inner_partition(config, pairs)

    boxes = list(face_boxes or ((config.face_box,) if not backbone.aligns
                                else backbone.facts.face_boxes[:2]))
    box_rows = []
    for box in boxes:
        cfg = config.replace(face_box=box)
        run = out / f"baseline_{box}"
        embed_step(cfg, pairs, run, split=HELD_OUT, cache_dir=cache, progress=progress)
        box_rows.append({"face_box": box, **score_run(run)})
    box_table = pd.DataFrame(box_rows)
    write_csv(out / "face_box.csv", box_table, float_format=FLOAT_FORMAT)
    box = str(_best(box_table)["face_box"])

    # each (run, epochs) scored once: a rerun reads the score back while the run folder holds
    # the same fine-tuning (its fingerprint), since a run cannot go back to fewer epochs
    ledger_path = out / "scores.json"
    ledger = _read_ledger(ledger_path)
    rows = []
    for opt in optimizers:
        for lr in learning_rates:
            run = out / f"train_{opt}_lr{lr:g}"
            for e in epochs:
                key = f"{run.name} epochs={e}"
                meta = read_run(run, lenient=True) or {}
                if not (key in ledger and meta.get("status") == "complete"
                        and ledger[key]["fingerprint"] == meta.get("fingerprint")):
                    cfg = config.replace(face_box=box, optimizer=opt, learning_rate=float(lr),
                                         epochs=e, trainable_layers=(n,))
                    train_step(cfg, n, pairs, run, cache_dir=cache, resume=True,
                               progress=progress)
                    ledger[key] = {"fingerprint": read_run(run, lenient=True)["fingerprint"],
                                   "score": score_run(run)}
                    write_json(ledger_path, ledger)
                score = ledger[key]["score"]
                rows.append({"optimizer": opt, "learning_rate": float(lr), "epochs": e,
                             **{k: score[k] for k in SCORES}})
    table = pd.DataFrame(rows)
    write_csv(out / "search.csv", table, float_format=FLOAT_FORMAT)
    best = _best(table)
    chosen = {"face_box": box, "optimizer": str(best["optimizer"]),
              "learning_rate": float(best["learning_rate"]), "epochs": int(best["epochs"]),
              "trainable_layers_searched": n, "auc_held_out": float(best["auc"]),
              "eer_held_out": float(best["eer"])}
    write_json(out / "chosen.json", chosen)
    write_text(out / "search.md", _markdown(config, n, box_table, table, chosen))
    complete(out, "search", fp, config=config,
             outputs=["face_box.csv", "search.csv", "chosen.json", "search.md", "scores.json"])
    return chosen


def _adopt_record(out: Path, fp: dict[str, Any]) -> None:
    """A search folder made before `mfr search` claimed its folder (its chosen.json and
    scores.json, no run.json) is taken as this search's, so that it is resumed, not refused
    as another run's."""
    from mfr.core.outputs import write_json

    if (out / "scores.json").is_file() and not (out / "run.json").exists():
        write_json(out / "run.json", {"command": "search", "fingerprint": fp,
                                      "status": "running"})


def _markdown(config: StudyConfig, n: int, boxes: pd.DataFrame, table: pd.DataFrame,
              chosen: dict[str, Any]) -> str:
    def md(df: pd.DataFrame) -> str:  # learning rates as written (1e-05), the rest to 4 places
        return df.to_markdown(index=False, floatfmt=[
            "g" if c == "learning_rate" else ".4f" for c in df.columns])

    return "\n".join([
        f"# Hyperparameter search ({config.backbone}, N = {n}, profile {config.profile})", "",
        "Scored on the pairs of training subjects held out of the search's own training "
        "(the train+validation subjects split again as the partition splits a dataset); the "
        "test subjects were not read. Distance: the thesis's (sum of squared differences of "
        "unit embeddings).", "",
        "## Face box (pre-trained network)", "", md(boxes), "",
        "## Optimizer x learning rate x epochs", "",
        md(table), "",
        f"Chosen: face_box {chosen['face_box']}, optimizer {chosen['optimizer']}, learning "
        f"rate {chosen['learning_rate']:g}, {chosen['epochs']} epochs (held-out AUC "
        f"{chosen['auc_held_out']:.4f}, EER {chosen['eer_held_out']:.4f}).", ""])
