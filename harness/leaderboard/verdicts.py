"""The compare stage's verdicts for the site: claims, rank tests, letters, calibration, as plot geometry.

Reads ``compare/claims.json`` and ``compare/ranks.json`` (absent in an older results tree: the pages
say so), a table's ``letters`` from its compare record and a run's ``calibration`` from its
``metrics.json``. Nothing is computed here but pixel positions: the statistics are the compare and
evaluate stages'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError
from harness.grid import PATHS
from harness.io import read_json
from harness.leaderboard import plots

VERDICTS = ("confirmed", "refuted", "inconclusive", "not run")


def _summary_file(results: Path, name: str) -> dict[str, Any] | None:
    path = Path(PATHS[name].format(results=results))
    if not path.is_file():
        return None
    record = read_json(path)
    if not isinstance(record, dict) or ("claims" if name == "claims" else "boards") not in record:
        raise DataError(f"not a {name} record written by harness compare --summary", path)
    return record


def read_claims(results: Path) -> dict[str, Any] | None:
    """``compare/claims.json``, or None when the compare stage wrote none."""
    return _summary_file(results, "claims")


def read_ranks(results: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """``compare/ranks.json`` by (model, train set); empty when absent."""
    record = _summary_file(results, "ranks")
    return {} if record is None else {(b["model"], b["train"]): b for b in record["boards"]}


def read_letters(results: Path, compare_path: str) -> dict[str, Any] | None:
    """The compact letter display of a table (``letters`` of its compare record), if recorded."""
    letters = read_json(Path(results) / compare_path).get("letters")
    return letters if isinstance(letters, dict) and isinstance(letters.get("letters"), dict) else None


@dataclass(frozen=True)
class CdRow:
    label: str
    rank: float
    x: float
    y: float
    x_text: float
    anchor: str


@dataclass(frozen=True)
class CdPlot:
    """A critical-difference diagram: the rank axis, each row's elbow to its label, the cliques' bars."""

    width: int
    height: int
    axis_y: float
    ticks: list[plots.Tick]
    rows: list[CdRow]
    bars: list[tuple[float, float, float]]  # (x1, x2, y)
    cd: tuple[float, float, float]  # (x1, x2, y)
    cd_value: float
    left: float
    right: float


def cd_plot(board: dict[str, Any]) -> CdPlot | None:
    """Geometry of ``board``'s critical-difference diagram (Demšar 2006): rank 1 (best) on the left;
    the better half of the rows labelled on the left, the rest on the right; a bar joins each clique."""
    if not board.get("diagram"):
        return None
    ranks = board["mean_ranks"]
    rows = list(board["rows"])
    k = len(rows)
    width, side = plots.WIDTH, 170.0
    left, right, axis_y = side, plots.WIDTH - side, 40.0
    axis = plots.Axis(1.0, float(k), left, right)
    n_bars = len(board["cliques"])
    first_label = axis_y + 22 + 7 * n_bars
    half = (k + 1) // 2
    placed = []
    for i, label in enumerate(rows):
        on_left = i < half
        j = i if on_left else k - 1 - i
        y = first_label + 20 * j
        placed.append(CdRow(label, ranks[label], axis(ranks[label]), y, left - 30 if on_left else right + 30,
                            "end" if on_left else "start"))
    bars = [(axis(ranks[c[0]]) - 4, axis(ranks[c[-1]]) + 4, axis_y + 14 + 7 * j)
            for j, c in enumerate(board["cliques"])]
    height = int(first_label + 20 * half + 10)
    cd_end = axis(min(float(k), 1.0 + board["cd"]))
    return CdPlot(width, height, axis_y, [plots.Tick(axis(float(r)), str(r)) for r in range(1, k + 1)], placed, bars,
                  (axis(1.0), cd_end, 14.0), board["cd"], left, right)


def reliability_plot(calibration: dict[str, Any] | None) -> plots.LinePlot | None:
    """The run's reliability diagram: share of relevant passages per score bin (bin centres)."""
    diagram = (calibration or {}).get("reliability") or {}
    edges, share = diagram.get("edges") or [], diagram.get("relevant") or []
    points = [((lo + hi) / 2, s) for lo, hi, s in zip(edges, edges[1:], share) if s is not None]
    if len(points) < 2:
        return None
    return plots.line_plot([x for x, _ in points], [y for _, y in points], "score (bin centre)",
                           "share judged relevant")
