"""Per (model, train set, eval set): aggregate seeds and test every loss against the baseline."""


rule compare:
    input:
        lambda w: [f"{run}/metrics.json" for runs in compare_rows(w).values() for run in runs],
    output:
        GRID.pattern("compare"),
    params:
        rows=lambda w: arg(compare_rows(w)),
        options=arg(config["compare"]),
        baseline=lambda w: GRID.baseline_of(w.model),
        results=lambda w: R,  # the results folder itself: run paths are recorded relative to it
    log:
        f"{R}/logs/compare/{{model}}/{{train}}/{{eval}}.log",
    shell:
        "harness compare --rows {params.rows} --baseline {params.baseline:q} --results {params.results:q}"
        " --options {params.options} --out {output:q} > {log:q} 2>&1"
