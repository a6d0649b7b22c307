"""The figure of a verified pairs table (Table 5.2 as pictures): per pair, the two faces as the
model saw them, side by side, under the distance and the decision.

Built without pyplot (no global state: safe in scripts, tests and notebooks).
"""

from __future__ import annotations

import textwrap
from typing import Any

__all__ = ["pairs_figure"]

_COLOURS = {"yes": "tab:green", "no": "tab:red"}
#: characters of a title line that fit the figure's width at its font size
_TITLE_CHARS = 58


def _caption(row: dict[str, Any]) -> str:
    d = row["distance"]
    text = f"pair {row['pair']}: " + ("no distance" if d != d else
                                      f"distance {d:.4f}: {row['decision']}")
    if row["label"]:
        text += f" ({row['label']}"
        text += {"yes": ", correct)", "no": ", WRONG)"}.get(row["correct"], ")")
    return text


def pairs_figure(result: Any, title: str = "", max_pairs: int = 30):
    """Rows = pairs (the first `max_pairs`), the faces as embedded; the caption is green for a
    correct decision on a labelled pair, red for a wrong one. `result`: a
    :class:`mfr.verify.pairs.PairsVerification`."""
    from matplotlib.figure import Figure

    rows = result.table.head(max_pairs).to_dict("records")
    k = max(len(rows), 1)
    fig = Figure(figsize=(4.6, 2.45 * k + 0.7), dpi=100, layout="constrained")
    subs = fig.subfigures(k, 1, squeeze=False)[:, 0]
    for sub, row in zip(subs, rows, strict=False):
        axes = sub.subplots(1, 2)
        for ax, col in zip(axes, ("image_a", "image_b"), strict=True):
            face = result.faces[row[col]]
            ax.set_xticks([])
            ax.set_yticks([])
            if isinstance(face, str):
                ax.text(0.5, 0.5, textwrap.fill(face, 28), ha="center", va="center",
                        fontsize=6, transform=ax.transAxes, color="tab:red")
            else:
                ax.imshow(face.image)
                ax.set_xlabel(textwrap.shorten(face.name.rsplit("/", 1)[-1], 30), fontsize=7)
        sub.suptitle(_caption(row), fontsize=9, color=_COLOURS.get(row["correct"], "black"))
    head = title or "Verified pairs"
    if len(result.table) > max_pairs:
        head += f" (first {max_pairs} of {len(result.table)} pairs)"
    t = result.threshold.value
    head += (f"\n{result.embedder['name']}, {result.distance_name}; same person when distance "
             f"<= {t:.4g}" if t is not None else f"\n{result.embedder['name']}, "
             f"{result.distance_name}; no threshold: undecided")
    if result.embedder.get("random_init"):
        head += "\nrandom init: distances say nothing about faces"
    # each line wrapped to the figure's width (4.6 in at 10 pt: about 58 characters), so a
    # long title is never cut at the edges
    head = "\n".join(textwrap.fill(line, _TITLE_CHARS) for line in head.split("\n"))
    fig.suptitle(head, fontsize=10)
    return fig
