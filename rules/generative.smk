"""Generative models (kind: generative): identifier index -> phase 1 (gen) -> phase-1 ranking of the
training queries -> phase 2 (ltrgr); every row ranks each eval set with gen-rank."""

GENERATIVE = "|".join(re.escape(m) for m in GRID.generative_models()) or "^$"


rule gen_index:
    wildcard_constraints:
        model=GENERATIVE,
        corpus="|".join(re.escape(d) for d in GRID.datasets),
    input:
        meta=f"{GRID.pattern('data', dataset='{corpus}')}/meta.json",
    output:
        index=directory(GRID.pattern("gen_index")),
    params:
        model=lambda w: base_model(w.model),
        views=lambda w: gen_views(w.model),
        folder=lambda w: GRID.data(w.corpus),
    threads: res("gen_index", "threads")
    resources:
        mem_mb=res("gen_index", "mem_mb"),
        runtime=res("gen_index", "runtime"),
        gpu=res("gen_index", "gpu"),
        cpus_per_task=res("gen_index", "threads"),
    log:
        f"{R}/logs/gen-index/{{corpus}}/{{model}}.log",
    benchmark:
        f"{R}/benchmarks/gen-index/{{corpus}}/{{model}}.tsv"
    shell:
        "harness gen-index --model {params.model:q} --views {params.views:q} --dataset {params.folder:q}"
        " --out {output.index:q} > {log:q} 2>&1"


rule gen_train:
    wildcard_constraints:
        model=GENERATIVE,
        train="|".join(re.escape(t) for t in GRID.train_sets),
        loss="gen",
    input:
        meta=f"{GRID.pattern('data', dataset='{train}')}/meta.json",
        index=lambda w: GRID.gen_index(w.model, w.train),
    output:
        checkpoint=directory(GRID.pattern("checkpoint")),
    params:
        model=lambda w: base_model(w.model),
        views=lambda w: gen_views(w.model),
        generative=lambda w: gen_settings(w.model),
        options=lambda w: gen_options(w.model, w.train),
        folder=lambda w: GRID.data(w.train),
        resume=lambda w: GRID.pattern("resume", model=w.model, train=w.train, loss=w.loss, seed=w.seed),
    threads: res("gen_train", "threads")
    resources:
        mem_mb=res("gen_train", "mem_mb"),
        runtime=res("gen_train", "runtime"),
        gpu=res("gen_train", "gpu"),
        cpus_per_task=res("gen_train", "threads"),
    log:
        f"{R}/logs/train/{{model}}/{{train}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{model}}/{{train}}/{{loss}}/seed{{seed}}.tsv"
    shell:
        "harness gen-train --phase gen --model {params.model:q} --views {params.views:q} --dataset {params.folder:q}"
        " --index {input.index:q} --generative {params.generative} --options {params.options}"
        " --seed {wildcards.seed:q} --threads {threads} --resume-dir {params.resume:q}"
        " --out {output.checkpoint:q} > {log:q} 2>&1"


rule gen_ranking:
    wildcard_constraints:
        model=GENERATIVE,
        train="|".join(re.escape(t) for t in GRID.train_sets),
    input:
        checkpoint=lambda w: GRID.checkpoint(w.model, w.train, "gen", w.seed),
        index=lambda w: GRID.gen_index(w.model, w.train),
    output:
        ranking=GRID.pattern("gen_ranking"),
    params:
        views=lambda w: gen_views(w.model),
        generative=lambda w: gen_settings(w.model),
        folder=lambda w: GRID.data(w.train),
    threads: res("gen_rank", "threads")
    resources:
        mem_mb=res("gen_rank", "mem_mb"),
        runtime=res("gen_rank", "runtime"),
        gpu=res("gen_rank", "gpu"),
        cpus_per_task=res("gen_rank", "threads"),
    log:
        f"{R}/logs/gen-ranking/{{model}}/{{train}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/gen-ranking/{{model}}/{{train}}/seed{{seed}}.tsv"
    shell:
        "harness gen-rank --model {input.checkpoint:q} --views {params.views:q} --dataset {params.folder:q}"
        " --index {input.index:q} --generative {params.generative} --keys-out {output.ranking:q}"
        " --threads {threads} > {log:q} 2>&1"


rule gen_train_ltrgr:
    wildcard_constraints:
        model=GENERATIVE,
        train="|".join(re.escape(t) for t in GRID.train_sets),
        loss="ltrgr",
    input:
        checkpoint=lambda w: GRID.checkpoint(w.model, w.train, "gen", w.seed),
        ranking=lambda w: GRID.pattern("gen_ranking", model=w.model, train=w.train, seed=w.seed),
        index=lambda w: GRID.gen_index(w.model, w.train),
    output:
        checkpoint=directory(GRID.pattern("checkpoint")),
    params:
        views=lambda w: gen_views(w.model),
        generative=lambda w: gen_settings(w.model),
        options=lambda w: gen_options(w.model, w.train),
        folder=lambda w: GRID.data(w.train),
        resume=lambda w: GRID.pattern("resume", model=w.model, train=w.train, loss=w.loss, seed=w.seed),
    threads: res("gen_train", "threads")
    resources:
        mem_mb=res("gen_train", "mem_mb"),
        runtime=res("gen_train", "runtime"),
        gpu=res("gen_train", "gpu"),
        cpus_per_task=res("gen_train", "threads"),
    log:
        f"{R}/logs/train/{{model}}/{{train}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{model}}/{{train}}/{{loss}}/seed{{seed}}.tsv"
    shell:
        "harness gen-train --phase ltrgr --model {input.checkpoint:q} --views {params.views:q}"
        " --dataset {params.folder:q} --index {input.index:q} --ranking {input.ranking:q}"
        " --generative {params.generative} --options {params.options} --seed {wildcards.seed:q}"
        " --threads {threads} --resume-dir {params.resume:q} --out {output.checkpoint:q} > {log:q} 2>&1"


rule gen_rank:
    wildcard_constraints:
        model=GENERATIVE,
    input:
        meta=lambda w: f"{GRID.data(GRID.dataset_of(w.eval))}/meta.json",
        index=lambda w: GRID.gen_index(w.model, GRID.corpus_of(w.eval)),
        model=lambda w: [] if w.train == ZERO_SHOT else [gen_model_of(w)],
    output:
        metrics=f"{GRID.pattern('run')}/metrics.json",
        per_query=f"{GRID.pattern('run')}/per_query.jsonl",
        run=f"{GRID.pattern('run')}/run.trec",
    params:
        model=gen_model_of,
        views=lambda w: gen_views(w.model),
        generative=lambda w: gen_settings(w.model),
        folder=lambda w: GRID.data(GRID.dataset_of(w.eval)),
        corpus=lambda w: GRID.data(GRID.corpus_of(w.eval)),
        split=lambda w: GRID.eval_sets[w.eval]["split"],
        family=lambda w: GRID.family_of(w.eval),
        metrics=lambda w: GRID.datasets[GRID.dataset_of(w.eval)]["metrics"],
        info=gen_run_info,
        out=lambda w, output: os.path.dirname(output.metrics),
    threads: res("gen_rank", "threads")
    resources:
        mem_mb=res("gen_rank", "mem_mb"),
        runtime=res("gen_rank", "runtime"),
        gpu=res("gen_rank", "gpu"),
        cpus_per_task=res("gen_rank", "threads"),
    log:
        f"{R}/logs/evaluate/{{model}}/{{train}}/{{loss}}/seed{{seed}}/{{eval}}.log",
    benchmark:
        f"{R}/benchmarks/evaluate/{{model}}/{{train}}/{{loss}}/seed{{seed}}/{{eval}}.tsv"
    shell:
        "harness gen-rank --model {params.model:q} --views {params.views:q} --dataset {params.folder:q}"
        " --corpus {params.corpus:q} --index {input.index:q} --generative {params.generative}"
        " --split {params.split:q} --family {params.family:q} --metrics {params.metrics:q}"
        " --run-info {params.info} --threads {threads} --out {params.out:q} > {log:q} 2>&1"
