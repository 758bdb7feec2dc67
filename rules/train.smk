"""(model, train set, loss, seed) -> a checkpoint folder."""


rule train:
    input:
        meta=f"{GRID.pattern('data', dataset='{train}')}/meta.json",
        groups=lambda w: GRID.mined(w.train),
        teacher=teacher_scores,
        eval_sets=lambda w: GRID.eval_metas(),
        loss_check=lambda w: GRID.loss_check(w.loss),
    output:
        checkpoint=directory(GRID.pattern("checkpoint")),
    wildcard_constraints:
        model=DENSE,
        train="|".join(GRID.train_sets),
        loss="|".join(re.escape(k) for k in GRID.losses),
    params:
        model=lambda w: base_model(w.model),
        settings=lambda w: arg(model_settings(w.model)),
        loss=lambda w: GRID.losses[w.loss].name,
        loss_params=lambda w: arg(GRID.losses[w.loss].params),
        options=lambda w: arg(GRID.train_options(w.train)),
        leakage=lambda w, input: [os.path.dirname(m) for m in input.eval_sets],
        folder=lambda w: GRID.data(w.train),
        groups=lambda w, input: flag("--groups", input.groups),
        teacher=lambda w, input: flag("--teacher", input.teacher),
        loss_check=lambda w, input: flag("--loss-check", input.loss_check),
        resume=lambda w: GRID.pattern("resume", model=w.model, train=w.train, loss=w.loss, seed=w.seed),
    threads: res("train", "threads")
    resources:
        mem_mb=res("train", "mem_mb"),
        runtime=res("train", "runtime"),
        gpu=res("train", "gpu"),
        cpus_per_task=res("train", "threads"),
    log:
        f"{R}/logs/train/{{model}}/{{train}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{model}}/{{train}}/{{loss}}/seed{{seed}}.tsv"
    shell:
        "harness train --model {params.model:q} --settings {params.settings} --dataset {params.folder:q}"
        " {params.groups} --leakage-eval {params.leakage:q}"
        " --loss {params.loss:q} --loss-params {params.loss_params} --seed {wildcards.seed:q}"
        " --options {params.options} {params.teacher} {params.loss_check} --resume-dir {params.resume:q}"
        " --threads {threads} --out {output.checkpoint:q} > {log:q} 2>&1"
