"""Build the static leaderboard site from a results tree.

``build_site(results, out)`` reads ``compare/`` and ``runs/`` (see :mod:`.collect`), renders the
Jinja2 templates (autoescape on) and writes::

    claims.html                the papers' claims with their verdicts, the critical-difference diagrams
                               (``compare/claims.json``, ``compare/ranks.json``; see :mod:`.verdicts`)
    index.html                 one table per (model, train set) and metric (see :mod:`.tables`), Δ vs the
                               baseline with CI and Holm p under each value, a one-line summary per eval set
    datasets/<slug>.html       the data (meta.json), every metric of every row, queries won/tied/lost, the
                               significance table, forest plots of Δ, CI plots, score distributions
    runs/<slug>.html           config, reproduce commands (shell-quoted) and Snakemake target, provenance,
                               training curve, score histogram
    runs/<slug>.run.trec.gz    the run file, gzipped;  runs/<slug>.metrics.json  its metrics
    runs.html, losses.html     every run; every loss the runs were trained with, as their checkpoints describe it
    leaderboard.json/.csv/.tex every number on the site; the main tables in LaTeX
    static/                    stylesheet, script, icon: no network is needed to view the site

Every page's footer names the commit of this code, whether it had uncommitted changes, and the
build date; the machines' host names are left out unless asked (``show_host``).
Every link is relative, so the site works from ``file://`` and from any static server. The site
is built with :func:`harness.io.atomic_dir`, so a failed build leaves the previous site (or none)
rather than half of a new one.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import json
import re
import shlex
import shutil
import textwrap
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from harness.grid import GENERATIVE_ROWS
from harness.io import atomic_dir
from harness.provenance import git_commit
from harness.leaderboard import plots, verdicts
from harness.leaderboard.collect import CompareFile, Comparison, Results, Run, read_per_query, read_results
from harness.leaderboard.tables import (CSV_FIELDS, MAIN, Board, best_labels, boards, csv_rows, leaderboard_dict,
                                        metric_names, reference_checks, win_tie_loss)
from harness.references import read_references

HERE = Path(__file__).parent
STATIC = ["style.css", "site.js", "favicon.svg"]


def slug(text: str) -> str:
    """A file-name-safe, collision-free name: the readable characters of ``text`` plus a short hash."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60]
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return f"{readable}-{digest}" if readable else digest


def dataset_page(cf: CompareFile) -> str:
    return f"datasets/{slug(f'{cf.model}/{cf.train}/{cf.eval}')}.html"


def run_stem(run_path: str) -> str:
    return f"runs/{slug(run_path.removeprefix('runs/'))}"


def snakemake_target(run: Run, results: Path) -> str:
    """The one line that (re)makes ``run`` with the workflow, run from the folder holding ``results``."""
    return shlex.join(["snakemake", "--cores", "all", f"{results.name}/{run.path}/metrics.json"])


def loss_anchor(name: str) -> str:
    """The id of a loss's section on the losses page: ``loss-<name>`` for a plain identifier."""
    return f"loss-{name}" if re.fullmatch(r"[A-Za-z0-9_.-]+", name) else f"loss-{slug(name)}"


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with ``digits`` decimals; an en dash for a missing one."""
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_p(p: float | None, permutations: int | None = None) -> str:
    """A p-value: three decimals, or scientific notation below 0.001; with the ``permutations`` of its
    test, a p at the test's floor (1 / (permutations + 1)) as ``< 1/permutations`` (e.g. ``< 1e-4``)."""
    if p is None:
        return "–"
    if permutations and p <= 1 / (permutations + 1) * (1 + 1e-9):
        return "< " + f"{1 / permutations:.0e}".replace("e-0", "e-")
    return f"{p:.1e}" if 0 < p < 1e-3 else f"{p:.3f}"


def _listed(items: list[Comparison]) -> str:
    return ", ".join(f"{c.loss} {c.mean_diff:+.3f} (Holm p {fmt_p(c.p_corrected)})" for c in items)


def summary(cf: CompareFile) -> str:
    """One sentence on ``cf``: the losses that beat (or lose to) the baseline on the main metric, with Δ
    and Holm p; when none beats it, the closest one and the other tested metrics where some loss is
    significantly better."""
    compared = cf.comparisons.get(cf.main_metric, {}).values()
    if not compared:
        return f"{cf.eval}: no loss is compared with {cf.baseline}."
    better = [c for c in compared if c.significant and c.direction == "better"]
    worse = [c for c in compared if c.significant and c.direction == "worse"]
    if better:
        verb = "beats" if len(better) == 1 else "beat"
        text = f"{cf.eval}: {_listed(better)} {verb} {cf.baseline} on {cf.main_metric}"
    else:
        closest = max(compared, key=lambda c: c.mean_diff)
        text = f"{cf.eval}: no loss beats {cf.baseline} on {cf.main_metric}; closest: {_listed([closest])}"
        elsewhere = []
        for metric in cf.metrics:
            items = [c for c in cf.comparisons.get(metric, {}).values() if c.significant and c.direction == "better"]
            if metric != cf.main_metric and items:
                elsewhere.append(f"on {metric}: {_listed(items)}")
        if elsewhere:
            text += f" — but significantly better {'; '.join(elsewhere)}"
    if worse:
        text += f"; significantly worse: {_listed(worse)}"
    return text + "."


def fmt_quantity(value: float | None, unit: str = "") -> str:
    """A measured quantity with thousands separators and at most one decimal."""
    if value is None:
        return "–"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def latex_escape(text: Any) -> str:
    """Escape LaTeX's special characters in ``text``; a line break becomes a space (it would end a ``%`` comment)."""
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "\n": " ", "\r": " "}
    return "".join(specials.get(ch, ch) for ch in str(text))


def _write_json(path: Path, obj: Any) -> None:
    """Plain write: the whole site folder is renamed into place at the end (see :func:`build_site`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _environment(latex: bool = False) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=not latex,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(fmt=fmt, fmt_p=fmt_p, inline=inline, breakable=breakable, quantity=fmt_quantity, slug=slug,
                       tex=latex_escape,
                       pretty=lambda obj: json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False))
    env.globals.update(dataset_page=dataset_page, run_stem=run_stem, loss_anchor=loss_anchor,
                       MAIN=MAIN, GENERATIVE_ROWS=GENERATIVE_ROWS, plots=plots, best_labels=best_labels,
                       summary=summary,
                       cd_plot=verdicts.cd_plot, reliability_plot=verdicts.reliability_plot)
    return env


SECTION = re.compile(r"^([A-Z][A-Za-z ]*):$")
CODE_SECTIONS = {"Example", "Examples"}


def _paragraphs(body: str) -> list[tuple[str, str]]:
    """Blank-line-separated paragraphs: ("formula", dedented text) when every line is indented,
    else ("text", the lines joined by spaces)."""
    out = []
    for block in re.split(r"\n\s*\n", body):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if all(line[:1].isspace() for line in lines):
            out.append(("formula", textwrap.dedent("\n".join(lines))))
        else:
            out.append(("text", " ".join(line.strip() for line in lines)))
    return out


def _arguments(body: str) -> list[tuple[str, str]]:
    """``name: description`` entries; an indented line continues the previous description."""
    items: list[tuple[str, str]] = []
    for line in body.splitlines():
        if line[:1].isspace() and items:
            items[-1] = (items[-1][0], f"{items[-1][1]} {line.strip()}")
        elif ":" in line:
            name, _, text = line.partition(":")
            items.append((name.strip(), text.strip()))
    return items


def doc_sections(doc: str) -> list[dict[str, Any]]:
    """A Google-style docstring as sections for the losses page.

    The untitled first section and titled ones (``References:``, ...) are paragraphs and indented
    formulas (:func:`_paragraphs`); ``Args:`` is a list of (name, description); an ``Example:`` is
    kept verbatim as code.
    """
    sections: list[tuple[str, list[str]]] = [("", [])]
    for line in doc.splitlines():
        match = SECTION.match(line)
        if match:
            sections.append((match.group(1), []))
        else:
            sections[-1][1].append(line)
    out = []
    for title, lines in sections:
        body = textwrap.dedent("\n".join(lines)).strip("\n")
        if not body.strip():
            continue
        if title in CODE_SECTIONS:
            out.append({"title": title, "kind": "code", "text": body})
        elif title == "Args":
            out.append({"title": title, "kind": "args", "entries": _arguments(body)})
        else:
            out.append({"title": title, "kind": "prose", "blocks": _paragraphs(body)})
    return out


def inline(text: str) -> markupsafe.Markup:
    """Escape ``text``, then render ``code`` spans and link bare http(s) URLs."""
    escaped = str(markupsafe.escape(text))
    escaped = re.sub(r"``(.+?)``", r"<code>\1</code>", escaped)
    escaped = re.sub(r"https?://[^\s<>\"]*[^\s<>\".,;:)]",
                     lambda m: f'<a href="{m[0]}" rel="noopener">{m[0]}</a>', escaped)
    return markupsafe.Markup(escaped)


def breakable(text: str) -> markupsafe.Markup:
    """Escape ``text`` and allow a line break after each ``=``, ``,``, ``_`` and ``.`` but the decimal point of a
    number (long row labels)."""
    return markupsafe.Markup(re.sub(r"([=,_]|\.(?!\d))", r"\1<wbr>", str(markupsafe.escape(text))))


def _loss_entries(cards: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**card, "name": name, "doc": doc_sections(card["doc"])} for name, card in cards.items()]


SIMILARITY_LABELS = {"cosine": "cosine similarity", "dot": "dot product"}


def score_label(run: Run) -> str:
    """The histogram's x label: the model's similarity (``provenance.config.model.settings``) if known."""
    model = ((run.record.get("provenance") or {}).get("config") or {}).get("model") or {}
    similarity = (model.get("settings") or {}).get("similarity") if isinstance(model, dict) else None
    return f"score ({SIMILARITY_LABELS.get(similarity, similarity)})" if similarity else "score"


def _histogram(run: Run) -> plots.HistogramPlot | None:
    """The scores of the run's positive and negative pairs (``histogram`` in metrics.json), if recorded."""
    histogram = run.record.get("histogram") or {}
    edges = histogram.get("edges") or []
    if len(edges) < 2:
        return None
    return plots.histogram_plot(edges, {
        "positives": ("pos", histogram.get("positives") or [0] * (len(edges) - 1)),
        "negatives": ("neg", histogram.get("negatives") or [0] * (len(edges) - 1))}, score_label(run))


def _run_plots(run: Run) -> dict[str, Any]:
    log = [(float(e["step"]), float(e["loss"])) for e in run.train_log if "step" in e and e.get("loss") is not None]
    curve = plots.line_plot([s for s, _ in log], [v for _, v in log], "step", "training loss") if log else None
    return {"curve": curve, "histogram": _histogram(run)}


def _score_plots(cf: CompareFile, runs: dict[str, Run]) -> list[tuple[str, plots.HistogramPlot]]:
    """(row label, score histogram of its first run) for each row whose run recorded one: small multiples."""
    return [(row.label, hist) for row in cf.rows if row.runs and (hist := _histogram(runs[row.runs[0]])) is not None]


def _dataset_plots(cf: CompareFile) -> list[plots.IntervalPlot]:
    out = []
    for metric in [cf.main_metric] + [m for m in cf.all_metrics if m != cf.main_metric]:
        rows = [(r.label, r.kind, r.metrics[metric].mean, r.metrics[metric].ci_low, r.metrics[metric].ci_high)
                for r in cf.rows if metric in r.metrics]
        if rows:
            out.append(plots.interval_plot(metric, rows))
    return out


def _forest_plots(cf: CompareFile) -> list[plots.IntervalPlot]:
    """Per tested metric (the main one first): each loss's paired difference from the baseline and its CI."""
    kinds = {r.label: r.kind for r in cf.rows}
    return [plots.interval_plot(metric, [(loss, kinds.get(loss, "loss"), c.mean_diff, c.ci_low, c.ci_high)
                                         for loss, c in cf.comparisons[metric].items()], forest=True)
            for metric in dict.fromkeys([cf.main_metric, *cf.metrics]) if cf.comparisons.get(metric)]


def _write_run_files(run: Run, results: Path, site: Path) -> dict[str, str | None]:
    stem = run_stem(run.path)
    trec = results / run.path / "run.trec"
    links: dict[str, str | None] = {"metrics": f"{stem}.metrics.json", "trec": None}
    _write_json(site / f"{stem}.metrics.json", run.record)
    if trec.is_file():
        with open(trec, "rb") as src, open(site / f"{stem}.run.trec.gz", "wb") as raw:
            with gzip.GzipFile(filename="run.trec", mode="wb", fileobj=raw, mtime=0) as dst:
                shutil.copyfileobj(src, dst)
        links["trec"] = f"{stem}.run.trec.gz"
    return links


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading ``'`` (OWASP's CSV injection
    rule); numbers, negative ones included, stay numbers."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def _csv_text(all_boards: list[Board]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in csv_rows(all_boards))
    return buffer.getvalue()


def _without_host(run: Run) -> Run:
    """``run`` without the machine's name (``provenance.host``)."""
    prov = run.record.get("provenance")
    if not isinstance(prov, dict) or "host" not in prov:
        return run
    return replace(run, record={**run.record, "provenance": {k: v for k, v in prov.items() if k != "host"}})


def build_info() -> dict[str, Any]:
    """What built the site: the commit of this code (None outside git), whether it had uncommitted
    changes, and the time (UTC)."""
    commit = git_commit(HERE)
    return {"commit": commit.removesuffix("-dirty") if commit else None,
            "dirty": bool(commit and commit.endswith("-dirty")),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def _render_into(results: Path, site: Path, title: str, references: Path | None, show_host: bool) -> Path:
    data: Results = read_results(results)
    if not show_host:
        data = replace(data, runs={path: _without_host(run) for path, run in data.runs.items()})
    checks = reference_checks(data, read_references(references) if references else None)
    all_boards = boards(data, checks)
    registry = data.losses
    env, tex = _environment(), _environment(latex=True)
    run_compares: dict[str, list[CompareFile]] = {}
    for cf in data.compares:
        for row in cf.rows:
            for run_path in row.runs:
                run_compares.setdefault(run_path, []).append(cf)
    built = build_info()
    common = {"title": title, "built": built}

    def page(name: str, template: str, **context: Any) -> None:
        root = "../" * name.count("/")
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(env.get_template(template).render(root=root, page=name, **common, **context),
                                 encoding="utf-8")

    (site / "static").mkdir(parents=True)
    for name in STATIC:
        shutil.copyfile(HERE / "static" / name, site / "static" / name)
    claims, ranks = verdicts.read_claims(results), verdicts.read_ranks(results)
    page("index.html", "index.html.j2", boards=all_boards, metrics=metric_names(data.compares),
         registry=registry, ranks=ranks)
    page("claims.html", "claims.html.j2", claims=claims, ranks=ranks)
    extra = {}
    for board in all_boards:
        for cf in board.compares:
            wins = win_tie_loss(cf, functools.partial(read_per_query, results, metric=cf.main_metric))
            extra[cf.path] = {"summary": summary(cf), "win_tie_loss": {k: asdict(v) for k, v in wins.items()}}
            page(dataset_page(cf), "dataset.html.j2", cf=cf, runs=data.runs, charts=_dataset_plots(cf),
                 forests=_forest_plots(cf), scores=_score_plots(cf, data.runs), wins=wins,
                 registry=registry, checks=[c for c in board.checks if c.reference.eval_set == cf.eval],
                 letters=verdicts.read_letters(results, cf.path))
    for run in data.runs.values():
        links = _write_run_files(run, results, site)
        page(f"{run_stem(run.path)}.html", "run.html.j2", run=run, links=links, charts=_run_plots(run),
             target=snakemake_target(run, results), results_name=results.name,
             compares=run_compares.get(run.path, []), registry=registry)
    page("runs.html", "runs.html.j2", runs=list(data.runs.values()))
    page("losses.html", "losses.html.j2", losses=_loss_entries(registry))
    _write_json(site / "leaderboard.json", leaderboard_dict(data, all_boards, title, checks, extra) | {"built": built})
    (site / "leaderboard.csv").write_text(_csv_text(all_boards), encoding="utf-8")
    latex = tex.get_template("table.tex.j2").render(boards=all_boards, title=title)
    if claims is not None:
        _write_json(site / "claims.json", claims)
        latex += tex.get_template("claims.tex.j2").render(claims=claims)
    (site / "leaderboard.tex").write_text(latex, encoding="utf-8")
    return site / "index.html"


def build_site(results: Path, out: Path, *, title: str = "lossboard", references: Path | None = None,
               show_host: bool = False) -> Path:
    """Build the site for ``results`` into ``out`` (replaced whole) and return ``out/index.html``;
    rows with published ``references`` (a references file) are marked OK or FAIL. The machines'
    host names are left out unless ``show_host``."""
    out = Path(out)
    with atomic_dir(out) as tmp:
        _render_into(Path(results), tmp, title, references, show_host)
    return out / "index.html"
