"""The benchmark scripts run: ``benchmarks/run_all.py --smoke`` once, which runs every
``benchmarks/bench_*.py --smoke`` in its own process; each script's section of the written results
must hold its ratio, a positive finite number, and where a script times the harness against a
reference computing the same thing, the two must agree (same embeddings, same passages, same
metrics). Timings are not checked (benchmarks are not timed tests)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))

import run_all  # noqa: E402

NUMBER = r"([-+]?(?:inf|nan|[\d,]*\.?\d+(?:e[-+]?\d+)?))"  # what a float prints as, so a bad one fails the check
RATIOS = {  # the line each script prints its ratio on
    "train": rf"ratio harness / sentence-transformers \(examples/s\): {NUMBER}",
    "encode": rf"ratio harness / sentence-transformers: {NUMBER}",
    "metrics": rf"speed-up vs pytrec_eval: {NUMBER}x",
    "search": rf"ratio torch / faiss \(time\): {NUMBER}",
    "losses": rf"^\| infonce \| [\d.]+ \| {NUMBER} % \|",  # its share of a training step
    "rates": rf"^\| minilm \| [\d.]+ M \| {NUMBER} \|",  # passages/s
    "hours": rf"^total: {NUMBER} h, of which",  # the papers' grid with the committed CPU rates
}
AGREEMENT = {  # the line where a script compares its two sides' results, and the largest gap allowed
    "encode": (rf"max \|harness - sentence-transformers\| over embeddings: {NUMBER}", 1e-4),
    "metrics": (rf"largest difference of a mean vs pytrec_eval: {NUMBER}", 1e-6),
    "search": (rf"top-\d+ overlap faiss vs torch: {NUMBER}", None),  # a share of passages found by both: 1
}
BENCHMARKS = {b.name: b for b in run_all.BENCHMARKS}


def sections(markdown: str) -> dict[str, str]:
    """``## title`` -> the text up to the next such heading."""
    parts = re.split(r"^## ", markdown, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] for part in parts}


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, str]:
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    skip = [] if SHARED_DATA.exists() else ["--skip", "encode"]
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--smoke", "--out", str(out),
                           *skip], cwd=ROOT, capture_output=True, text=True, timeout=600)
    return done, out.read_text(encoding="utf-8") if out.exists() else ""


@pytest.mark.slow
def test_run_all_smoke_writes_every_section(smoke_results: tuple[subprocess.CompletedProcess, str]) -> None:
    done, markdown = smoke_results
    assert done.returncode == 0, markdown or done.stderr
    found = sections(markdown)
    assert set(found) == {"Machine", run_all.GRID_TITLE, *(b.title for b in BENCHMARKS.values())}
    assert re.search(r"^- cores: \d+$", found["Machine"], flags=re.MULTILINE)
    assert re.search(r"^- CPU: \S", found["Machine"], flags=re.MULTILINE)
    assert "skipped (--smoke)" in found[run_all.GRID_TITLE]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RATIOS))
def test_benchmark_smoke_prints_a_ratio(name: str, smoke_results: tuple[subprocess.CompletedProcess, str]) -> None:
    if name == "encode" and not SHARED_DATA.exists():
        pytest.skip("../shared/data is absent: bench_encode needs the Cranfield corpus")
    section = sections(smoke_results[1])[BENCHMARKS[name].title]
    assert f"`python benchmarks/{BENCHMARKS[name].script} --smoke`" in section
    assert "**failed**" not in section, section
    match = re.search(RATIOS[name], section, flags=re.MULTILINE)
    assert match, section
    ratio = float(match.group(1).replace(",", ""))
    assert math.isfinite(ratio) and ratio > 0, section


@pytest.mark.slow
@pytest.mark.parametrize("name", list(AGREEMENT))
def test_both_sides_of_a_benchmark_compute_the_same_result(
        name: str, smoke_results: tuple[subprocess.CompletedProcess, str]) -> None:
    if name == "encode" and not SHARED_DATA.exists():
        pytest.skip("../shared/data is absent: bench_encode needs the Cranfield corpus")
    section = sections(smoke_results[1])[BENCHMARKS[name].title]
    pattern, tolerance = AGREEMENT[name]
    match = re.search(pattern, section, flags=re.MULTILINE)
    assert match, section
    value = float(match.group(1))
    if tolerance is None:
        assert value == 1.0, section
    else:
        assert 0 <= value <= tolerance, section


def test_a_failing_benchmark_is_reported_and_the_rest_still_written(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("import sys\nprint('| a | b |\\n|---|---|\\n| 1 | 2 |')\nprint('ratio x / y:', 1.5)\n")
    bad.write_text("import sys\nprint('half a table')\nsys.exit('bad: the data is missing')\n")
    monkeypatch.setattr(run_all, "BENCHMARKS", [run_all.Benchmark("bad", "1. Bad", str(bad)),
                                                run_all.Benchmark("good", "2. Good", str(good))])
    out = tmp_path / "RESULTS.md"
    assert run_all.main(["--smoke", "--out", str(out)]) == 1
    found = sections(out.read_text(encoding="utf-8"))
    assert "**failed** (exit 1)" in found["1. Bad"]
    assert "bad: the data is missing" in found["1. Bad"] and "half a table" in found["1. Bad"]
    assert "| 1 | 2 |\nratio x / y: 1.5" in found["2. Good"]  # a markdown table goes in verbatim
