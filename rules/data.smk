"""Datasets -> the on-disk format; teacher scores for listwise distillation."""


rule prepare:
    output:
        meta=f"{R}/data/{{dataset}}/meta.json",
    params:
        source=lambda w: GRID.datasets[w.dataset]["source"],
        options=lambda w: arg(GRID.datasets[w.dataset]["options"]),
        folder=lambda w: GRID.data(w.dataset),
    log:
        f"{R}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/prepare/{{dataset}}.tsv"
    shell:
        "harness prepare --source {params.source} --options {params.options} --out {params.folder} > {log} 2>&1"


rule teacher:
    input:
        meta=f"{R}/data/{{dataset}}/meta.json",
    output:
        scores=f"{R}/teacher/{{dataset}}/{{teacher}}.jsonl",
    params:
        kind=config["teacher"]["kind"],
        model=lambda w: (
            base_model(config["teacher"]["model"])
            if config["teacher"]["kind"] == "bi-encoder"
            else config["teacher"]["model"]
        ),
        settings=lambda w: arg(
            model_settings(config["teacher"]["model"])
            if config["teacher"]["kind"] == "bi-encoder"
            else {}
        ),
        folder=lambda w: GRID.data(w.dataset),
    threads: res("teacher", "threads")
    resources:
        mem_mb=res("teacher", "mem_mb"),
        runtime=res("teacher", "runtime"),
        gpu=res("teacher", "gpu"),
    log:
        f"{R}/logs/teacher/{{dataset}}/{{teacher}}.log",
    benchmark:
        f"{R}/benchmarks/teacher/{{dataset}}/{{teacher}}.tsv"
    shell:
        "harness teacher --kind {params.kind} --model {params.model} --settings {params.settings}"
        " --dataset {params.folder} --threads {threads} --out {output.scores} > {log} 2>&1"
