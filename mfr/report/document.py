"""``REPORT.md`` and ``REPORT.html`` of a study folder: every table and figure, beside the
thesis's values, and what ran it.

Built from the files the steps wrote (Table 4.2 from ``partition/``, Table 5.1, Figures
5.1-5.5, the verification and identification metrics from ``evaluation/``, the attention
shares and maps from ``gradcam/``) and the study's ledger (durations, versions). The HTML
embeds the figures, so it reads on its own.
"""

from __future__ import annotations

import base64
import json
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mfr.core.config import StudyConfig
from mfr.core.integrity import check_recorded
from mfr.core.outputs import write_text
from mfr.core.run_record import read_run

__all__ = ["write_report"]

DEMO_NOTE = ("**This is the offline demo**: a generated sample of drawn faces (not photographs) "
             "and a network with random initial weights (no VGGFace2 weights offline). Its "
             "numbers and figures show that every step of the study runs; they mean nothing "
             "about faces, masks or the thesis's findings.")
RANDOM_NOTE = ("**Random initial weights**: this study's network did not start from the "
               "VGGFace2 weights; its numbers show the machinery, not the thesis's findings.")

_EVAL_FIGURES = (("fig_5_1_train_loss", "Fig 5.1: training loss per epoch"),
                 ("fig_5_2_val_loss", "Fig 5.2: validation loss per epoch"),
                 ("fig_5_3_distances", "Fig 5.3: test distances by label"),
                 ("fig_5_4_medians", "Fig 5.4: median distances per setting"),
                 ("fig_5_5_gap", "Fig 5.5: median gap vs trained layers"),
                 ("roc", "ROC"), ("det", "DET"), ("cmc", "CMC (identification)"))


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def _demoted(md: str) -> str:
    """A Markdown file's headings pushed two levels down (it becomes a report section)."""
    return re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 2, 6) + " ", md, flags=re.M)


def _device() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return ", ".join(f"{d.platform}:{d.device_kind}" for d in jax.devices())
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return ", ".join(g.name for g in gpus)
    return f"CPU ({platform.processor() or platform.machine()})"


def _onednn(ledger: dict[str, Any]) -> str:
    """'; TensorFlow's oneDNN kernels on (why)', from the ledger's numerics record."""
    rec = ledger.get("numerics", {}).get("tensorflow_onednn")
    if not rec or rec.get("on") is None:
        return ""
    return f"; TensorFlow's oneDNN kernels {'on' if rec['on'] else 'off'} ({rec['why']})"


def _what_ran(out: Path, config: StudyConfig, ledger: dict[str, Any],
              steps: Sequence[Any]) -> list[str]:
    v = ledger.get("versions", {})
    extra = sorted(set(config.seeds) - {config.seed})
    part = read_run(out / "partition", lenient=True) or {}
    fp = part.get("fingerprint", {})
    data = ("a generated sample of drawn faces (synthetic RMFRD layout)"
            if config.data_root is None else f"`{fp.get('data_root', config.data_root)}`")
    lines = ["## What ran it", "",
             f"- profile `{config.profile}`; weights: {config.weights or 'random init (seeded)'}"
             f"; preprocessing {config.preprocessing}; N = "
             f"{', '.join(map(str, config.trainable_layers))}; {config.epochs} epochs, batch "
             f"{config.batch_size}, {config.optimizer} at lr {config.learning_rate:g}, margin "
             f"{config.margin:g}; seed {config.seed}"
             + (f" (fine-tuning also with seeds {', '.join(map(str, extra))})" if extra else ""),
             f"- data: {data}; listing fingerprint `{fp.get('data', '-')[:16]}`",
             f"- Python {v.get('python')}, Keras {v.get('keras')} on {v.get('keras_backend')}"
             + "".join(f", {k} {v[k]}" for k in ("tensorflow", "tensorflow-cpu", "jax")
                       if k in v)
             + f"; device: {_device()}" + _onednn(ledger),
             "", "| step | status | seconds | executed notebook |", "|---|---|---|---|"]
    total = 0.0
    for s in steps:
        rec = ledger.get("steps", {}).get(s.name, {})
        secs = rec.get("seconds")
        total += secs or 0.0
        status = rec.get("status", "not run")
        if status == "skipped":
            status = f"skipped: {rec.get('reason', '')}"
        nb = rec.get("notebook")
        lines.append(f"| {s.name} | {status} | {'' if secs is None else f'{secs:.0f}'} | "
                     f"{f'[{nb}]({nb})' if nb else ''} |")
    lines += ["", f"Time of the steps that ran last: {total:.0f} s (a step skipped as up to date "
                  "keeps the time it took when it ran).", ""]
    return lines


def _seeds_line(ev: Path) -> str:
    """One line per fine-tuned N run with several seeds: its AUC's spread across the seeds
    beside one run's subject-bootstrap interval (from ``evaluation/metrics.json``)."""
    path = check_recorded(ev / "metrics.json")
    spread = json.loads(path.read_text(encoding="utf-8")).get("seeds", {})
    parts = []
    for g in spread.values():
        a = g["stats"]["auc"]
        if a["mean"] is None:
            continue
        ci = ("" if a["ci_low"] is None else
              f"; seed {a['ci_seed']}'s 95% subject-bootstrap CI [{a['ci_low']:.4f}, "
              f"{a['ci_high']:.4f}]")
        sd = "n/a" if a["sd"] is None else f"{a['sd']:.4f}"
        parts.append(f"{g['label']}: AUC {a['mean']:.4f} ± {sd} (mean ± sd over seeds "
                     f"{', '.join(map(str, g['seeds']))}; range {a['min']:.4f}-{a['max']:.4f})"
                     f"{ci}")
    return ("Seeds: " + "; ".join(parts) + ". The spread is what another training order (and "
            "from random weights, the initialisation) moves; the interval, what other "
            "subjects move.") if parts \
        else "Seeds: no statistic defined across seeds."


def _figure(rel: str, title: str) -> list[str]:
    return [f"**{title}**", "", f"![{title}]({rel})", ""]


def write_report(out_dir: str | Path, config: StudyConfig, ledger: dict[str, Any],
                 steps: Sequence[Any]) -> Path:
    """Write ``REPORT.md`` and ``REPORT.html`` into the study folder; returns the .md path."""
    out = Path(out_dir)
    demo = config.weights is None and config.data_root is None
    from mfr.backbones import get_backbone

    backbone = get_backbone(config.backbone)
    net = backbone.facts.short_label
    md = [f"# mfr study `{config.profile}`: masked face recognition with a Siamese {net}", ""]
    md += [f"> {DEMO_NOTE if demo else RANDOM_NOTE}", ""] if config.weights is None else []
    md += ["Every table and figure of the thesis's Chapters 4-5, regenerated, the thesis's value "
           "beside this run's; then the metrics the thesis named but did not measure. Each "
           "section comes from a step's executed notebook (links below).", ""]
    md += _what_ran(out, config, ledger, steps)
    if config.weights is not None:  # the released weights' terms, wherever they are used
        md += [f"Weights: {backbone.licence_note()}", ""]

    table = _read(out / "partition" / "table_4_2.md")
    md += ["## Pairs (Table 4.2)", "", _demoted(table) if table else "not run", ""]

    ev = out / "evaluation"
    md += ["## Distances (Table 5.1, Figures 5.1-5.5)", ""]
    t51 = _read(ev / "table_5_1.md")
    if t51:
        md += ["Median distances of the test pairs, sum of squared differences of the "
               "L2-normalised embeddings (the thesis's):", "", t51, ""]
        for stem, title in _EVAL_FIGURES[:5]:
            if (ev / f"{stem}.png").is_file():
                md += _figure(f"evaluation/{stem}.png", title)
    else:
        md += ["not run", ""]
    md += ["## Verification and identification (beyond the thesis)", ""]
    for name, title in (("verification", "Verification (test pairs; 95% intervals: bootstrap "
                                         "over subjects)"),
                        ("thresholds", "A threshold chosen on the validation pairs, applied to "
                                       "the test pairs"),
                        ("identification", "1:N identification: masked probes against the "
                                           "unmasked gallery")):
        text = _read(ev / f"{name}.md")
        if text:
            md += [f"### {title}", "", _demoted(text), ""]
    seeds = _read(ev / "seeds.md")
    if seeds:
        md += ["### Spread across seeds", "", _seeds_line(ev), "", _demoted(seeds), ""]
    for stem, title in _EVAL_FIGURES[5:]:
        if (ev / f"{stem}.png").is_file():
            md += _figure(f"evaluation/{stem}.png", title)

    gc = out / "gradcam"
    md += ["## Attention (Grad-CAM, Fig 5.6, RQ1)", ""]
    rec = ledger.get("steps", {}).get("gradcam", {})
    summary = _read(gc / "attention_summary.md")
    if rec.get("status") == "skipped":
        md += [f"Skipped: {rec.get('reason')}.", ""]
    elif summary:
        md += [_demoted(summary), ""]
        for stem, title in (("attention_share", "Share of the map above the mask line"),
                            ("overlays_masked", "Maps of masked images (Fig 5.6)"),
                            ("overlays_unmasked", "Maps of their unmasked partners")):
            if (gc / f"{stem}.png").is_file():
                md += _figure(f"gradcam/{stem}.png", title)
    else:
        md += ["not run", ""]
    md += ["## Verifying photo pairs (Table 5.2)", ""]
    t52 = _read(out / "pairs" / "table_5_2.md")
    if t52:
        md += [_demoted(t52), ""]
        if (out / "pairs" / "table_5_2.png").is_file():
            md += _figure("pairs/table_5_2.png", "The pairs, side by side")
    else:
        rec = ledger.get("steps", {}).get("pairs", {})
        md += [f"Skipped: {rec['reason']}." if rec.get("status") == "skipped" else
               "not run (give a CSV of photo pairs as the profile's table_5_2_pairs)", ""]
    text = "\n".join(md).rstrip() + "\n"
    path = write_text(out / "REPORT.md", text)
    write_text(out / "REPORT.html", _html(text, out, config.profile))
    return path


_IMG = re.compile(r'<img src="([^"]+\.png)"')


def _html(md: str, out: Path, title: str) -> str:
    """The report as one HTML file, figures embedded as data URIs."""
    import mistune

    body = mistune.create_markdown(plugins=["table"], escape=False)(md)

    def embed(m: re.Match) -> str:
        path = out / m.group(1)
        if not path.is_file():
            return m.group(0)
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<img src="data:image/png;base64,{data}"'

    body = _IMG.sub(embed, body)
    style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
             "line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}"
             "th,td{border:1px solid #ccc;padding:.25em .5em;text-align:right}"
             "th:first-child,td:first-child{text-align:left}img{max-width:100%}"
             "blockquote{background:#fff4e5;border-left:4px solid #f0a020;margin:1em 0;"
             "padding:.5em 1em}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mfr study "
            f"{json.dumps(title)[1:-1]}</title><style>{style}</style></head><body>\n{body}"
            f"</body></html>\n")
