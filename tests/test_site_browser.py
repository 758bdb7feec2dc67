"""The leaderboard in a real headless Chromium, opened from disk: sort, filter, metric switch, links."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_site_fixture

from harness.leaderboard.build import build_site

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser

if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (install the Debian packages chromium and chromium-driver)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")


def write_fixture(root: Path) -> Path:
    return load_site_fixture().write_results(root)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    results = write_fixture(root / "results")
    build_site(results, root / "site")
    return results, root / "site"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


def synth_means(results: Path) -> dict[str, float]:
    """Mean ndcg@10 of each minilm row on the synth dataset, from the runs' metrics.json."""
    values: dict[str, list[float]] = {}
    for path in (results / "runs" / "minilm").glob("**/synth/metrics.json"):
        rec = json.loads(path.read_text())
        values.setdefault(rec["run"]["loss"], []).append(rec["metrics"]["ndcg@10"])
    return {label: sum(v) / len(v) for label, v in values.items()}


def visible_labels(table) -> list[str]:
    return table.locator("tbody tr[data-label]").evaluate_all(
        "rows => rows.filter(r => !r.hidden).map(r => r.dataset.label)")


def test_index_sort_filter_switch_and_follow_links(site, browser, tmp_path):
    results, root = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((root / "index.html").as_uri())

    board = page.locator("section.board", has=page.locator("h2", has_text="minilm"))
    current = board.locator("[data-metrics]:not([hidden]) table")
    assert current.count() == 1
    table = page.locator(f"#{current.get_attribute('id')}")
    natural = visible_labels(table)
    assert natural[:2] == ["zero-shot", "infonce"]

    header = table.locator("thead th", has_text="synth")
    header.locator("button").click()
    means = synth_means(results)
    assert header.get_attribute("aria-sort") == "descending"
    assert visible_labels(table) == sorted(natural, key=lambda label: -means[label])
    assert visible_labels(table) != natural
    header.locator("button").click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert visible_labels(table) == sorted(natural, key=lambda label: means[label])

    page.fill("#filter", "mw")
    assert visible_labels(table) == ["mw"]
    e5 = page.locator("section.board", has=page.locator("h2", has_text="e5"))
    assert visible_labels(e5.locator("[data-metrics]:not([hidden]) table")) == ["mw.temperature=0.05"]
    assert page.locator("#filter-count").inner_text() == "2 of 6 shown"
    page.fill("#filter", "")
    assert len(visible_labels(table)) == len(natural)

    page.select_option("#metric", "mrr@10")
    assert current.count() == 1
    assert current.locator("thead").inner_text().count("mrr@10") == 2
    assert not table.is_visible() and current.is_visible()
    page.select_option("#metric", "main")
    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)

    board.locator("[data-metrics]:not([hidden]) tr[data-label='mw'] td a").first.click()
    page.wait_for_load_state()
    assert "/datasets/" in page.url
    page.locator("tr[data-label='mw'] td.runs a").first.click()
    page.wait_for_load_state()
    assert "/runs/" in page.url and page.url.endswith(".html")
    assert page.locator("h1").inner_text().startswith("mw")
    assert page.locator("polyline.curve").count() == 1
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

    phone = browser.new_page(viewport={"width": 390, "height": 844}, color_scheme="dark")
    phone.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    phone.on("pageerror", lambda e: errors.append(str(e)))
    overflow = {}
    for name in ["index.html", next(root.glob("runs/*listwise_kd-seed1-synth*.html")).relative_to(root).as_posix()]:
        phone.goto((root / name).as_uri())
        overflow[name] = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    phone.screenshot(path=str(tmp_path / "run-phone.png"), full_page=True)

    assert all(v <= 0 for v in overflow.values()), f"a page scrolls sideways on a phone (tables, plots may): {overflow}"
    assert errors == []
    assert all(url.startswith("file://") for url in requests), requests
    assert (tmp_path / "index.png").stat().st_size > 10_000


STICKY_ROW_HEADERS = """() => [...document.querySelectorAll('.table-wrap')]
  .filter(w => w.offsetParent !== null).map(w => {
  w.scrollLeft = w.scrollWidth;
  const th = w.querySelector('tbody th[scope="row"]');
  const r = th ? th.getBoundingClientRect() : null;
  return r ? {left: r.left, right: r.right} : null;
}).filter(x => x)"""


P_COLUMNS = """() => [...document.querySelectorAll('.table-wrap')].filter(w => w.offsetParent !== null).flatMap(w => {
  const heads = [...w.querySelectorAll('thead th')];
  const p = heads.findIndex(h => /^p\\b/.test(h.innerText.trim()));
  if (p < 0) return [];
  return [...w.querySelectorAll('tbody tr')].map(tr => {
    const loss = tr.querySelector('th[scope="row"]'), cell = tr.children[p];
    cell.scrollIntoView({block: 'center', inline: 'nearest'});
    const seen = e => { const r = e.getBoundingClientRect(), x = (r.left + r.right) / 2, y = (r.top + r.bottom) / 2;
      const hit = document.elementFromPoint(x, y);
      return r.left >= 0 && r.right <= window.innerWidth && hit !== null && e.contains(hit); };
    return {loss: loss.innerText.trim(), p: cell.innerText.trim(), lossSeen: seen(loss), pSeen: seen(cell)};
  });
})"""


def p_columns_on_a_phone(browser, root: Path, tmp_path: Path) -> list[dict]:
    """At 390 px, with each table scrolled (inside its own frame) to its p column, the p value of every
    row and the row's loss name are both on screen and on top (not covered), and the page itself
    never scrolls sideways; returns the rows checked."""
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    checked = []
    for name in ["index.html", *sorted(p.relative_to(root).as_posix() for p in root.glob("datasets/*.html"))]:
        phone.goto((root / name).as_uri())
        for row in phone.evaluate(P_COLUMNS):
            assert row["lossSeen"] and row["pSeen"], (name, row)
            checked.append(row)
        phone.screenshot(path=str(tmp_path / "p-column.png"))  # the last table as scrolled, for a failure's eye
        assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, name
    return checked


def test_phone_width_shows_every_tables_loss_name_beside_its_p_column(site, browser, tmp_path):
    assert len(p_columns_on_a_phone(browser, site[1], tmp_path)) >= 10


def test_phone_width_shows_the_generative_rows_of_a_dense_board(browser, tmp_path):
    """A generative model's rows on a bi-encoder's board (longer labels, a badge): names, badges and p in view."""
    fixture = load_site_fixture()
    results = fixture.write_results(tmp_path / "results", fixture.GUEST_BOARDS)
    build_site(results, tmp_path / "site")
    rows = p_columns_on_a_phone(browser, tmp_path / "site", tmp_path)
    assert {r["loss"] for r in rows} >= {"minilm-gen · gen", "minilm-gen · ltrgr", "ltrgr"}  # both boards' p tables
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto((tmp_path / "site" / "index.html").as_uri())
    for header in phone.evaluate(STICKY_ROW_HEADERS):  # the row name stays in view, the table scrolled right
        assert 0 <= header["left"] and header["right"] <= 390, header
    badge = phone.locator("section.board", has=phone.locator("h2", has_text="minilm")).first.locator(
        "[data-metrics]:not([hidden]) tr[data-label='minilm-gen · ltrgr'] .badge.generative")
    badge.scroll_into_view_if_needed()
    assert badge.is_visible()


def test_phone_width_shows_the_new_elements_without_sideways_scrolling(site, browser):
    results, root = site
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    errors: list[str] = []
    phone.on("pageerror", lambda e: errors.append(str(e)))
    pages = {"index": "index.html",
             "dataset": next(root.glob("datasets/minilm-synth-synth-*.html")).relative_to(root).as_posix(),
             "run": next(root.glob("runs/minilm-synth-mw-seed1-synth-*.html")).relative_to(root).as_posix()}
    for kind, name in pages.items():
        phone.goto((root / name).as_uri())
        assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, name
        footer = phone.locator("footer.site")
        assert footer.is_visible() and footer.locator("time").is_visible(), name  # commit: tests/test_site.py
        for header in phone.evaluate(STICKY_ROW_HEADERS):  # the loss name stays in view, the table scrolled right
            assert 0 <= header["left"] and header["right"] <= 390, (name, header)
        if kind == "index":
            assert phone.locator("ul.summary li").first.is_visible()
            board = phone.locator("section.board", has=phone.locator("h2", has_text="minilm"))
            row = board.locator("[data-metrics]:not([hidden]) tr[data-label='mw']")
            row.locator(".delta").first.scroll_into_view_if_needed()
            assert row.locator(".delta").first.is_visible()
            assert row.locator(".delta").first.inner_text().startswith("Δ +")
            assert row.locator(".seeds").inner_text() == "n=2"
        elif kind == "dataset":
            assert phone.locator("figure.forest").first.is_visible()
            assert phone.locator("td.wtl").first.is_visible()
            assert "Prepared dataset" in phone.locator("main").inner_text()
        else:
            target = phone.locator("pre.cmd[data-step='snakemake']")
            assert target.is_visible() and target.inner_text().startswith("snakemake --cores all results/runs/")
            assert phone.locator("pre.cmd[data-step='train']").is_visible()
    assert errors == []


@pytest.fixture(scope="module")
def claims_site(tmp_path_factory):
    """The fixture tree with a board of three eval sets and four rows, and the compare stage's summaries."""
    root = tmp_path_factory.mktemp("claims")
    fixture = load_site_fixture()
    results = fixture.write_results(root / "results", fixture.BOARDS + [fixture.RANKS_BOARD])
    fixture.write_summaries(results)
    build_site(results, root / "site")
    return results, root / "site"


def test_claims_page_lists_verdicts_and_draws_the_critical_difference_diagram(claims_site, browser, tmp_path):
    results, root = claims_site
    record = json.loads((results / "compare" / "claims.json").read_text())
    boards = json.loads((results / "compare" / "ranks.json").read_text())["boards"]
    ranks = {(b["model"], b["train"]): b for b in boards}
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((root / "index.html").as_uri())
    nav = page.locator("header.site nav a")
    assert nav.all_inner_texts()[:2] == ["Overview", "Claims"]
    tart = page.locator("section.board", has=page.locator("h2", has_text="tart"))
    diagram = tart.locator("figure.cd-diagram svg")
    assert diagram.is_visible()
    assert diagram.locator("g.cd-row").count() == 4
    nav.nth(1).click()
    page.wait_for_load_state()
    assert page.url.endswith("/claims.html")
    rows = page.locator("table.claims-table tbody tr")
    assert rows.count() == len(record["claims"])
    shown = {rows.nth(i).get_attribute("data-claim"): rows.nth(i).locator(".verdict").inner_text()
             for i in range(rows.count())}
    assert shown == {c["key"]: c["verdict"] for c in record["claims"]}
    assert shown["ltrgr-hits5"] == "not run"
    figure = page.locator("figure.cd-diagram")
    assert figure.count() == 1 and figure.locator("svg").is_visible()
    labels = figure.locator("g.cd-row text").evaluate_all("texts => texts.map(t => t.textContent)")
    board = ranks[("tart", "marco")]
    assert sorted(labels) == sorted(f"{r} ({board['mean_ranks'][r]:.2f})" for r in board["rows"])
    assert figure.locator("line.cd-clique").count() == len(board["cliques"])
    assert page.locator("p.cd-none").count() == 2  # e5 (2 complete rows), minilm (2 eval sets) say why
    page.locator("table.claims-table a", has_text="mw-main").click()
    assert page.locator("#claim-" + page.evaluate("location.hash").removeprefix("#claim-")).is_visible()
    page.screenshot(path=str(tmp_path / "claims.png"), full_page=True)
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    phone.goto((root / "claims.html").as_uri())
    assert phone.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    assert errors == []
