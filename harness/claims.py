"""Papers' claims as tests over leaderboard rows: parsing, the per-table tests and the verdicts.

A claim (a key of the config's ``claims:``) names its paper (arXiv id), its sentence and one test::

    test: {greater: [mw, infonce], metric: auc_global}             # mean(mw - infonce) > margin (default 0)
    test: {less: [infonce, zero-shot], metric: ndcg@10}            # mean(infonce - zero-shot) < -margin
    test: {noninferior: [mw, infonce], metric: main, margin: 0.005} # mean(mw - infonce) > -margin
    test: {best: lsepair, among: [jointlh, summarglh, lsepair, rand1lh], metric: main}

``metric: main`` is each eval set's main metric; ``models:`` / ``eval_sets:`` restrict where the claim
is tested. Each directional form tests H0: mean(d) = b for the per-query differences d = a - b of the
seed-averaged rows and the boundary b (+margin for greater, -margin for noninferior; less swaps the
rows), with the paired test of :mod:`harness.compare` (two-sided, so each side is a one-sided test at
alpha / 2), and reports mean(d) with its 95 % paired BCa bootstrap interval. Holm's step-down correction
runs over every (claim, model, train set, eval set) tested. A claim is

- **confirmed** on an eval set when its Holm-corrected p < alpha and the whole interval lies on the
  claim's side of the boundary: non-inferiority is the one-sided test against the margin through the
  interval's lower bound (CONSORT's two-sided 95 % interval), never "p > 0.05 so equal";
- **refuted** when the corrected p < alpha and the interval lies wholly on the other side;
- **inconclusive** otherwise.

``best`` is an intersection-union test (Berger 1982): a is best when it beats every other row, so its
p is the largest p of a against each other row when every difference is positive; when some
difference is negative, the smallest p of those (a loses to that row). Across eval sets a claim is
confirmed when at least one eval set confirms it and none refutes it, refuted in the mirror case, and
inconclusive when the eval sets disagree or none is significant (the Holm correction already covers
every eval set, so one confirmation is a family-wise controlled rejection of H0).

A row a claim names may be a row of the grid, the zero-shot row, or a row the harness knows but this
grid does not run (a registered loss, a generative row): such a claim is listed as "not run". Any other
name is an error, as is an unknown metric, eval set, model or test form, or a margin without a direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.compare import RowInput, bootstrap_ci, holm, paired_t_test, randomization_test, seed_mean
from harness.errors import ConfigError
from harness.grid import ZERO_SHOT
from harness.metrics import parse_metric

FORMS = ("greater", "less", "noninferior", "best")
DIRECTED = ("greater", "less", "noninferior")
KEYS = {"paper", "sentence", "test", "models", "eval_sets"}
TEST_KEYS = {*FORMS, "among", "metric", "margin"}
CONFIRMED, REFUTED, INCONCLUSIVE, NOT_RUN = "confirmed", "refuted", "inconclusive", "not run"
NOT_MEASURED = "not measured"  # the eval set's family has not the claim's metric: the claim does not apply there


@dataclass(frozen=True)
class Claim:
    """One parsed claim: the rows it compares (``a`` against each of ``others``), on ``metric``."""

    key: str
    paper: str
    sentence: str
    form: str
    a: str
    others: tuple[str, ...]
    metric: str
    margin: float
    models: tuple[str, ...] | None = None
    eval_sets: tuple[str, ...] | None = None

    @property
    def rows(self) -> tuple[str, ...]:
        return (self.a, *self.others)

    @property
    def boundary(self) -> float:
        """The value of mean(a - other) that H0 puts at the edge of the claim."""
        return -self.margin if self.form == "noninferior" else self.margin

    def text(self) -> str:
        """The test in words, e.g. ``mw > infonce on auc_global``."""
        metric = "the main metric" if self.metric == "main" else self.metric
        if self.form == "best":
            return f"{self.a} best of {', '.join(self.rows)} on {metric}"
        sign = {"greater": ">", "less": "<", "noninferior": ">="}[self.form]
        a, b = (self.others[0], self.a) if self.form == "less" else (self.a, self.others[0])
        margin = f" {'-' if self.form == 'noninferior' else '+'} {self.margin:g}" if self.margin else ""
        return f"{a} {sign} {b}{margin} on {metric}"


def parse_claims(spec: dict[str, Any] | None, *, rows: list[str], known_rows: list[str], models: list[str],
                 eval_sets: list[str], check_metric: Any) -> list[Claim]:
    """Parse the config's ``claims:`` into :class:`Claim` records, refusing bad input.

    ``rows``: the grid's row keys and labels (and the zero-shot row); ``known_rows``: names of rows the
    harness knows but the grid may not run. ``check_metric(name)`` raises for an unknown metric.
    Errors are :class:`ConfigError` naming ``claims.<key>``.
    """
    out = []
    for key, claim in (spec or {}).items():
        where = f"claims.{key}"
        if not isinstance(claim, dict):
            raise ConfigError("a claim is a mapping with paper, sentence and test", key=where)
        unknown = set(claim) - KEYS
        if unknown:
            raise ConfigError(f"unknown field(s) {sorted(unknown)}; a claim has {sorted(KEYS)}", key=where)
        test = claim.get("test")
        if not isinstance(test, dict):
            raise ConfigError(f"needs a test: a mapping with one of {', '.join(FORMS)}", key=f"{where}.test")
        forms = [f for f in FORMS if f in test]
        extra = set(test) - TEST_KEYS
        if len(forms) != 1 or extra:
            raise ConfigError(f"unknown test form {sorted(extra or set(test))}; a test has exactly one of "
                              f"{', '.join(FORMS)} (with metric, margin; best with among)", key=f"{where}.test")
        form = forms[0]
        if "margin" in test and form not in DIRECTED:
            raise ConfigError(f"a margin without a direction: {form!r} compares no two rows one way; use "
                              f"greater, less or noninferior", key=f"{where}.test.margin")
        if form == "noninferior" and "margin" not in test:
            raise ConfigError("a non-inferiority test needs its margin (0 for 'at least as good')",
                              key=f"{where}.test.margin")
        margin = test.get("margin", 0.0)
        if not isinstance(margin, (int, float)) or isinstance(margin, bool) or margin < 0:
            raise ConfigError(f"margin {margin!r} must be a number >= 0", key=f"{where}.test.margin")
        if form == "best":
            a, others = test["best"], test.get("among")
            if not isinstance(others, list) or len([o for o in others if o != a]) < 1:
                raise ConfigError("best needs 'among': a list of the rows it is best of", key=f"{where}.test.among")
            others = [o for o in others if o != a]
        else:
            pair = test[form]
            if not (isinstance(pair, list) and len(pair) == 2 and pair[0] != pair[1]):
                raise ConfigError(f"{form} takes two different rows, [a, b]", key=f"{where}.test.{form}")
            a, others = (pair[1], [pair[0]]) if form == "less" else (pair[0], [pair[1]])
        for name in [a, *others]:
            if not isinstance(name, str) or (name not in rows and name not in known_rows):
                raise ConfigError(f"unknown row {name!r}: neither a row of this grid ({', '.join(rows)}) nor a "
                                  "loss or row the harness knows", key=f"{where}.test")
        metric = test.get("metric", "main")
        if metric != "main":
            try:
                check_metric(metric)
            except ConfigError as exc:
                raise ConfigError(exc.message, key=f"{where}.test.metric") from None
        for field_name, valid in (("models", models), ("eval_sets", eval_sets)):
            names = claim.get(field_name)
            if names is not None and (not isinstance(names, list) or not names):
                raise ConfigError(f"{field_name} is a non-empty list", key=f"{where}.{field_name}")
            for name in names or []:
                if name not in valid:
                    raise ConfigError(f"unknown {field_name[:-1].replace('_', ' ')} {name!r}; valid: "
                                      f"{', '.join(valid)}", key=f"{where}.{field_name}")
        out.append(Claim(key=str(key), paper=str(claim.get("paper", "")), sentence=str(claim.get("sentence", "")),
                         form=form, a=a, others=tuple(others), metric=metric, margin=float(margin),
                         models=tuple(claim["models"]) if claim.get("models") else None,
                         eval_sets=tuple(claim["eval_sets"]) if claim.get("eval_sets") else None))
    return out


def claim_from_record(record: dict[str, Any]) -> Claim:
    """A :class:`Claim` back from its JSON form (``dataclasses.asdict``)."""
    fields = dict(record)
    for name in ("others", "models", "eval_sets"):
        if fields.get(name) is not None:
            fields[name] = tuple(fields[name])
    return Claim(**fields)


@dataclass
class Pair:
    """One paired comparison of a claim in one table: mean(a - b) against the claim's boundary."""

    a: str
    b: str
    boundary: float
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    seeds: dict[str, list[int]] = field(default_factory=dict)


def claim_p(pairs: list[dict[str, Any]]) -> tuple[float, int]:
    """The p-value of a claim in one table and its direction (+1 with the claim, -1 against, 0 neither).

    One pair: its p, and the sign of mean(d) - boundary. Several (``best``): the intersection-union p
    (the largest) when every pair is with the claim, else the smallest p of the pairs against it.
    """
    signs = [np.sign(p["mean_diff"] - p["boundary"]) for p in pairs]
    against = [p["p_value"] for p, s in zip(pairs, signs) if s < 0]
    if against:
        return float(min(against)), -1
    if all(s > 0 for s in signs):
        return float(max(p["p_value"] for p in pairs)), 1
    return 1.0, 0


def table_verdict(pairs: list[dict[str, Any]], p_corrected: float, alpha: float) -> str:
    """confirmed / refuted / inconclusive from the Holm-corrected p and each pair's interval."""
    _, direction = claim_p(pairs)
    if p_corrected >= alpha or direction == 0:
        return INCONCLUSIVE
    if direction > 0 and all(p["ci_low"] > p["boundary"] for p in pairs):
        return CONFIRMED
    if direction < 0 and any(p["ci_high"] < p["boundary"] for p in pairs):
        return REFUTED
    return INCONCLUSIVE


def overall_verdict(verdicts: list[str]) -> str:
    """Across eval sets: confirmed if some eval set confirms and none refutes, refuted in the mirror
    case, "not run" when the claim ran nowhere, inconclusive otherwise."""
    ran = [v for v in verdicts if v != NOT_RUN]
    if not ran:
        return NOT_RUN
    if CONFIRMED in ran and REFUTED not in ran:
        return CONFIRMED
    if REFUTED in ran and CONFIRMED not in ran:
        return REFUTED
    return INCONCLUSIVE


def applies(claim: Claim, model: str, eval_set: str) -> bool:
    """Whether ``claim`` is tested on a table of ``model`` and ``eval_set`` (its ``models``/``eval_sets``)."""
    return (claim.models is None or model in claim.models) and (claim.eval_sets is None or eval_set in claim.eval_sets)


def table_claims(claims: list[Claim], rows: list[RowInput], main_metric: str, *, test: str, permutations: int,
                 resamples: int, seed: int) -> dict[str, Any]:
    """Each claim's paired comparisons in one table (compare record ``claims``), uncorrected.

    A claim whose rows are not all in the table is ``not run`` (with the missing rows); one on a metric
    without per-query values (``auc_global``) is ``no paired test``.
    """
    by_label = {r.label: r for r in rows}
    order = next(iter(by_label.values())).query_ids if rows else []
    out: dict[str, Any] = {}
    for claim in claims:
        metric = main_metric if claim.metric == "main" else claim.metric
        missing = [name for name in claim.rows if name not in by_label]
        if missing:
            out[claim.key] = {"status": NOT_RUN, "metric": metric, "missing": missing}
            continue
        if not parse_metric(metric).per_query:
            means = {name: float(np.mean(by_label[name].aggregate.get(metric, [np.nan]))) for name in claim.rows}
            out[claim.key] = {"status": "no paired test", "metric": metric, "means": means,
                              "reason": f"{metric} is one number per run (no per-query values to pair)"}
            continue
        pairs = []
        for other in claim.others:
            a = seed_mean(by_label[claim.a], metric, order)
            b = seed_mean(by_label[other], metric, order)
            shifted = a - claim.boundary
            if test == "randomization":
                p = randomization_test(shifted, b, permutations, np.random.default_rng(seed))
            else:
                p = paired_t_test(shifted, b)
            low, high = bootstrap_ci(a, b, resamples, 0.95, np.random.default_rng(seed))
            pairs.append(Pair(claim.a, other, claim.boundary, float(np.mean(a - b)), low, high, p,
                              {claim.a: by_label[claim.a].seeds, other: by_label[other].seeds}).__dict__)
        out[claim.key] = {"status": "run", "metric": metric, "n_queries": len(order), "pairs": pairs}
    return out


def summarise(claims: list[Claim], tables: list[dict[str, Any]], alpha: float) -> dict[str, Any]:
    """The claims record (``compare/claims.json``) from the compare records of every table.

    Holm's correction runs over every (claim, table) that was tested; each claim gets a verdict per
    table and one across them (:func:`overall_verdict`). A table whose eval set does not measure the
    claim's metric is left out, and so is one that holds none of the claim's rows (a dense claim on a
    generative model's table) unless no table holds them, when the claim is "not run".
    """
    tested: list[tuple[dict[str, Any], float]] = []
    out = []
    for claim in claims:
        entries, elsewhere = [], []  # elsewhere: tables holding none of the claim's rows (another model kind's)
        for table in tables:
            if not applies(claim, table["model"], table["eval"]):
                continue
            result = (table.get("claims") or {}).get(claim.key)
            if result is None:
                result = {"status": NOT_RUN, "metric": claim.metric, "missing": [],
                          "reason": "the compare record has no result for this claim"}
            if result["status"] == NOT_MEASURED:
                continue
            entry = {"model": table["model"], "train": table["train"], "eval": table["eval"], **result}
            if result["status"] == "run":
                p, direction = claim_p(result["pairs"])
                entry.update(p_value=p, direction=direction)
                tested.append((entry, p))
            else:
                entry["verdict"] = NOT_RUN if result["status"] == NOT_RUN else INCONCLUSIVE
                if set(result.get("missing") or ()) >= set(claim.rows) - {ZERO_SHOT}:
                    elsewhere.append(entry)
                    continue
            entries.append(entry)
        out.append({"claim": claim, "entries": entries or elsewhere[:1]})
    corrected, _ = holm([p for _, p in tested], alpha)
    for (entry, _), p_corr in zip(tested, corrected):
        entry["p_corrected"] = p_corr
        entry["verdict"] = table_verdict(entry["pairs"], p_corr, alpha)
    records = []
    for item in out:
        claim, entries = item["claim"], item["entries"]
        verdict = overall_verdict([e["verdict"] for e in entries])
        records.append({"key": claim.key, "paper": claim.paper, "sentence": claim.sentence, "test": claim.text(),
                         "spec": claim.__dict__ | {"others": list(claim.others)}, "verdict": verdict,
                         "counts": {v: sum(e["verdict"] == v for e in entries)
                                    for v in (CONFIRMED, REFUTED, INCONCLUSIVE, NOT_RUN)},
                         "entries": entries})
    return {"schema": 1, "alpha": alpha,
            "correction": {"method": "holm", "family": "every claim on every eval set where it was tested",
                           "tests": len(tested), "implementation": "statsmodels multipletests(method='holm')"},
            "rules": {"table": "confirmed: Holm p < alpha and the 95 % interval of mean(a - b) wholly on the claim's "
                               "side of its boundary; refuted: the same on the other side; else inconclusive",
                      "across": "confirmed if some eval set confirms and none refutes; refuted in the mirror case; "
                                "else inconclusive; not run when no eval set has the rows"},
            "claims": records}
