"""Per (model, train set, eval set): aggregate seeds and test every loss against the baseline; then,
over every table, the papers' claims and the rank tests across eval sets."""

from dataclasses import asdict

from harness.grid import claims as parse_config_claims

CLAIMS = [asdict(c) for c in parse_config_claims(config)]


rule compare:
    input:
        lambda w: [f"{run}/metrics.json" for runs in compare_rows(w).values() for run in runs],
    output:
        GRID.pattern("compare"),
    params:
        rows=lambda w: arg(compare_rows(w)),
        options=arg({**config["compare"], "claims": CLAIMS}),
        baseline=lambda w: GRID.baseline_of(w.model),
        results=lambda w: R,  # the results folder itself: run paths are recorded relative to it
    log:
        f"{R}/logs/compare/{{model}}/{{train}}/{{eval}}.log",
    shell:
        "harness compare --rows {params.rows} --baseline {params.baseline:q} --results {params.results:q}"
        " --options {params.options} --out {output:q} > {log:q} 2>&1"


rule compare_summary:
    """Every table's compare record -> the claims' verdicts (Holm over all of them) and the rank tests."""
    input:
        GRID.all_compares(),
    output:
        claims=GRID.pattern("claims"),
        ranks=GRID.pattern("ranks"),
    params:
        options=arg({**config["compare"], "claims": CLAIMS}),
    log:
        f"{R}/logs/compare/summary.log",
    shell:
        "harness compare --summary {input:q} --options {params.options} --claims-out {output.claims:q}"
        " --ranks-out {output.ranks:q} > {log:q} 2>&1"
