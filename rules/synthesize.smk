"""A synthetic train set (CADET): its corpus -> generated, filtered queries as a prepared dataset."""


ruleorder: synthesize > prepare


rule synthesize:
    input:
        corpus=lambda w: f"{GRID.data(GRID.train_sets[w.dataset]['corpus'])}/meta.json",
        few_shot=lambda w: [f"{GRID.data(d)}/meta.json" for d in [GRID.few_shot_source(w.dataset)] if d],
        shards=lambda w: GRID.filter_shards(w.dataset),
    output:
        meta=f"{DATA}/meta.json",
    wildcard_constraints:
        dataset="|".join(re.escape(t) for t in GRID.synthetic()) or "(?!)",
    params:
        corpus=lambda w: GRID.data(GRID.train_sets[w.dataset]["corpus"]),
        generator=lambda w: arg(GRID.train_sets[w.dataset]["generator"]),
        key=lambda w: f"train_sets.{w.dataset}.generator",
        few_shot=lambda w, input: flag("--few-shot", [os.path.dirname(m) for m in input.few_shot]),
        retriever=lambda w: base_model(GRID.train_sets[w.dataset]["filter"]["retriever"]),
        retriever_settings=lambda w: arg(model_settings(GRID.train_sets[w.dataset]["filter"]["retriever"])),
        embeddings=lambda w, input: os.path.dirname(input.shards[0]),
        depth=lambda w: GRID.train_sets[w.dataset]["filter"]["depth"],
        teacher_kind=config["teacher"]["kind"],
        teacher_model=lambda w: (
            base_model(config["teacher"]["model"])
            if config["teacher"]["kind"] == "bi-encoder"
            else config["teacher"]["model"]
        ),
        teacher_settings=lambda w: arg(
            model_settings(config["teacher"]["model"]) if config["teacher"]["kind"] == "bi-encoder" else {}
        ),
        record=lambda w: arg(
            {
                "train_set": w.dataset,
                "corpus": GRID.train_sets[w.dataset]["corpus"],
                "few_shot_from": GRID.few_shot_source(w.dataset),
                "retriever": GRID.train_sets[w.dataset]["filter"]["retriever"],
                "teacher": config["teacher"],
            }
        ),
        retriever_precision=lambda w: GRID.precision(GRID.train_sets[w.dataset]["filter"]["retriever"]),
        batch_size=config["encode"]["batch_size"],
        work=lambda w: GRID.pattern("synthesis", dataset=w.dataset),
        folder=lambda w: GRID.data(w.dataset),
    threads: res("synthesize", "threads")
    resources:
        mem_mb=res("synthesize", "mem_mb"),
        runtime=res("synthesize", "runtime"),
        gpu=res("synthesize", "gpu"),
        cpus_per_task=res("synthesize", "threads"),
    log:
        f"{R}/logs/synthesize/{{dataset}}.log",
    benchmark:
        f"{R}/benchmarks/synthesize/{{dataset}}.tsv"
    shell:
        "harness synthesize --corpus {params.corpus:q} --generator {params.generator} --key {params.key:q}"
        " {params.few_shot} --retriever {params.retriever:q} --retriever-settings {params.retriever_settings}"
        " --retriever-precision {params.retriever_precision:q}"
        " --embeddings {params.embeddings:q} --depth {params.depth} --teacher-kind {params.teacher_kind:q}"
        " --teacher-model {params.teacher_model:q} --teacher-settings {params.teacher_settings}"
        " --record {params.record} --batch-size {params.batch_size} --threads {threads}"
        " --work {params.work:q} --out {params.folder:q} > {log:q} 2>&1"
