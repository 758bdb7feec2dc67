"""A loss named by `module:Class` -> its contract report; every training with that loss waits for it,
so a loss that fails a check stops the grid before any of its training jobs."""


rule check_loss:
    output:
        report=GRID.pattern("loss_check"),
    params:
        loss=lambda w: GRID.losses[w.loss].name,
        loss_params=lambda w: json.dumps(GRID.losses[w.loss].params),
        label=lambda w: GRID.losses[w.loss].label,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    log:
        f"{R}/logs/check-loss/{{loss}}.log",
    benchmark:
        f"{R}/benchmarks/check-loss/{{loss}}.tsv"
    shell:
        "harness check-loss {params.loss:q} --label {params.label:q} --params {params.loss_params:q}"
        " --threads {threads} --out {output.report:q} > {log:q} 2>&1"
        " || {{ tail -n 1 {log:q} >&2; exit 1; }}"  # the error naming the failing check, on the terminal
