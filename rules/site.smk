"""The static leaderboard, built from the results files alone."""


rule site:
    input:
        GRID.all_compares(),
        GRID.all_mteb(),
    output:
        f"{SITE}/index.html",
    params:
        results=lambda w: R,  # the results folder itself: the site reads runs and checkpoints beyond the inputs
        site=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{R}/logs/site.log",
    shell:
        "harness site --results {params.results} --out {params.site} > {log} 2>&1"
