"""Datasets -> the on-disk format; teacher scores for listwise distillation."""


rule prepare:
    output:
        meta=f"{DATA}/meta.json",
    params:
        source=lambda w: GRID.datasets[w.dataset]["source"],
        options=lambda w: arg(GRID.datasets[w.dataset]["options"]),
        folder=lambda w: GRID.data(w.dataset),
    log:
        f"{R}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/prepare/{{dataset}}.tsv"
    shell:
        "harness prepare --source {params.source:q} --options {params.options} --out {params.folder:q} > {log:q} 2>&1"


rule teacher:
    input:
        meta=f"{DATA}/meta.json",
        groups=lambda w: GRID.mined(w.dataset),
    output:
        scores=GRID.pattern("teacher"),
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
        groups=lambda w, input: flag("--groups", input.groups),
    threads: res("teacher", "threads")
    resources:
        mem_mb=res("teacher", "mem_mb"),
        runtime=res("teacher", "runtime"),
        gpu=res("teacher", "gpu"),
        cpus_per_task=res("teacher", "threads"),
    log:
        f"{R}/logs/teacher/{{dataset}}/{{teacher}}.log",
    benchmark:
        f"{R}/benchmarks/teacher/{{dataset}}/{{teacher}}.tsv"
    shell:
        "harness teacher --kind {params.kind:q} --model {params.model:q} --settings {params.settings}"
        " --dataset {params.folder:q} {params.groups} --threads {threads} --out {output.scores:q} > {log:q} 2>&1"


rule mine:
    input:
        meta=f"{DATA}/meta.json",
        shards=lambda w: GRID.miner_shards(w.dataset),
    output:
        groups=GRID.pattern("mined"),
    params:
        folder=lambda w: GRID.data(w.dataset),
        negatives=lambda w: GRID.train_sets[w.dataset]["mined_negatives"],
        seed=13,
        dense=lambda w, input: (
            f"--model {shlex.quote(base_model(w.miner))} --settings {arg(model_settings(w.miner))}"
            f" --embeddings {shlex.quote(os.path.dirname(input.shards[0]))} --batch-size {config['encode']['batch_size']}"
            f" --precision {shlex.quote(GRID.precision(w.miner))}"
            if input.shards
            else ""
        ),
    threads: res("mine", "threads")
    resources:
        mem_mb=res("mine", "mem_mb"),
        runtime=res("mine", "runtime"),
        gpu=res("mine", "gpu"),
        cpus_per_task=res("mine", "threads"),
    log:
        f"{R}/logs/mine/{{dataset}}/{{miner}}.log",
    benchmark:
        f"{R}/benchmarks/mine/{{dataset}}/{{miner}}.tsv"
    shell:
        "harness mine --dataset {params.folder:q} {params.dense} --negatives {params.negatives}"
        " --seed {params.seed} --threads {threads} --out {output.groups:q} > {log:q} 2>&1"
