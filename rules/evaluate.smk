"""Encode each corpus once per model (sharded), then search every eval set that shares it; a corpus that
one evaluation alone searches in one shard is encoded by that evaluation (Grid.search_shards)."""


rule encode:
    wildcard_constraints:
        model=DENSE,
    input:
        meta=f"{GRID.pattern('data', dataset='{corpus}')}/meta.json",
        model=model_input,
    output:
        shard=f"{GRID.pattern('embeddings')}/{GRID.pattern('shard')}",
    params:
        model=model_of,
        settings=settings_of,
        folder=lambda w: GRID.data(w.corpus),
        out=lambda w, output: os.path.dirname(output.shard),
        shard=lambda w: int(w.shard),
        shards=lambda w: int(w.shards),
        batch_size=config["encode"]["batch_size"],
        dtype=config["encode"]["dtype"],
        precision=lambda w: GRID.precision(w.model),
    threads: res("encode", "threads")
    resources:
        mem_mb=res("encode", "mem_mb"),
        runtime=res("encode", "runtime"),
        gpu=res("encode", "gpu"),
        cpus_per_task=res("encode", "threads"),
    log:
        f"{R}/logs/encode/{{model}}/{{train}}/{{loss}}/seed{{seed}}/{{corpus}}/shard-{{shard}}-of-{{shards}}.log",
    benchmark:
        f"{R}/benchmarks/encode/{{model}}/{{train}}/{{loss}}/seed{{seed}}/{{corpus}}/shard-{{shard}}-of-{{shards}}.tsv"
    shell:
        "harness encode --model {params.model:q} --settings {params.settings} --dataset {params.folder:q}"
        " --shard {params.shard} --num-shards {params.shards} --batch-size {params.batch_size}"
        " --dtype {params.dtype:q} --precision {params.precision:q} --threads {threads} --out {params.out:q}"
        " > {log:q} 2>&1"


rule evaluate:
    wildcard_constraints:
        model=DENSE,
    input:
        meta=lambda w: f"{GRID.data(GRID.dataset_of(w.eval))}/meta.json",
        shards=lambda w: GRID.search_shards(w.model, w.train, w.loss, w.seed, GRID.corpus_of(w.eval)),
        model=model_input,
    output:
        metrics=f"{GRID.pattern('run')}/metrics.json",
        per_query=f"{GRID.pattern('run')}/per_query.jsonl",
        run=f"{GRID.pattern('run')}/run.trec",
    params:
        model=model_of,
        settings=settings_of,
        folder=lambda w: GRID.data(GRID.dataset_of(w.eval)),
        corpus=lambda w: GRID.data(GRID.corpus_of(w.eval)),
        embeddings=lambda w, input: flag("--embeddings", [os.path.dirname(input.shards[0])] if input.shards else []),
        batch_size=config["encode"]["batch_size"],
        dtype=config["encode"]["dtype"],
        split=lambda w: GRID.eval_sets[w.eval]["split"],
        family=lambda w: GRID.family_of(w.eval),
        identical=lambda w: "--ignore-identical-ids" if GRID.ignore_identical_ids(w.eval) else "--no-ignore-identical-ids",
        metrics=lambda w: GRID.datasets[GRID.dataset_of(w.eval)]["metrics"],
        index=config["encode"]["index"],
        precision=lambda w: GRID.precision(w.model),
        info=run_info,
        out=lambda w, output: os.path.dirname(output.metrics),
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
        gpu=res("evaluate", "gpu"),
        cpus_per_task=res("evaluate", "threads"),
    log:
        f"{R}/logs/evaluate/{{model}}/{{train}}/{{loss}}/seed{{seed}}/{{eval}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{model}}/{{train}}/{{loss}}/seed{{seed}}/{{eval}}.tsv"
    shell:
        "harness evaluate --model {params.model:q} --settings {params.settings} --dataset {params.folder:q}"
        " --corpus {params.corpus:q} {params.embeddings} --batch-size {params.batch_size} --dtype {params.dtype:q}"
        " --split {params.split:q}"
        " --family {params.family:q} {params.identical} --metrics {params.metrics:q} --index {params.index:q}"
        " --run-info {params.info} --precision {params.precision:q} --threads {threads} --out {params.out:q}"
        " > {log:q} 2>&1"


rule mteb:
    wildcard_constraints:
        model=DENSE,
    input:
        metas=[f"{folder}/meta.json" for folder in GRID.mteb_datasets()],
        model=model_input,
    output:
        scores=GRID.pattern("mteb"),
    params:
        model=model_of,
        settings=settings_of,
        tasks=config["mteb"]["tasks"],
        local=arg(GRID.mteb_local()),
        batch_size=config["mteb"]["batch_size"],
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
        gpu=res("evaluate", "gpu"),
        cpus_per_task=res("evaluate", "threads"),
    log:
        f"{R}/logs/mteb/{{model}}/{{train}}/{{loss}}/seed{{seed}}.log",
    shell:
        "harness mteb --model {params.model:q} --settings {params.settings} --tasks {params.tasks:q}"
        " --local {params.local} --batch-size {params.batch_size} --threads {threads}"
        " --out {output.scores:q} > {log:q} 2>&1"
