"""The static leaderboard, built from the results files alone."""


rule site:
    input:
        GRID.all_compares(),
        GRID.all_mteb(),
    output:
        f"{SITE}/index.html",
    params:
        results=lambda w, input: input[0].split("/compare/")[0],
        site=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{R}/logs/site.log",
    shell:
        "harness site --results {params.results:q} --out {params.site:q} > {log:q} 2>&1"
