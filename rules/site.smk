"""The static leaderboard, built from the results files alone."""


rule site:
    input:
        GRID.all_compares(),
    output:
        f"{SITE}/index.html",
    log:
        f"{R}/logs/site.log",
    shell:
        "harness site --results {R} --out {SITE} > {log} 2>&1"
