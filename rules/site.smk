"""The static leaderboard, built from the results files alone."""


rule site:
    input:
        GRID.all_compares(),
        GRID.all_mteb(),
        references=config.get("references") or [],
    output:
        f"{SITE}/index.html",
    params:
        results=lambda w: R,  # the results folder itself: the site reads runs and checkpoints beyond the inputs
        site=lambda w, output: os.path.dirname(output[0]),
        references=lambda w, input: flag("--references", [input.references] if input.references else []),
        show_host="--show-host" if config["show_host"] else "",
    log:
        f"{R}/logs/site.log",
    shell:
        "harness site --results {params.results:q} {params.references} {params.show_host} --out {params.site:q} > {log:q} 2>&1"
