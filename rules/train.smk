"""(model, train set, loss, seed) -> a checkpoint folder.

`train_sets.<t>.devices: N` runs one job as N processes under torchrun (and `resources.train.nodes`
nodes through SLURM): see harness/launch.py."""

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
        precision=lambda w: GRID.precision(w.model),
        resume=lambda w: GRID.pattern("resume", model=w.model, train=w.train, loss=w.loss, seed=w.seed),
        launch=lambda w: torchrun_prefix(train_devices(w), res("train", "nodes")),
        threads=res("train", "threads"),
    threads: lambda w: res("train", "threads") * train_devices(w)
    resources:
        mem_mb=lambda w: train_res(w, "mem_mb"),
        runtime=lambda w: train_res(w, "runtime"),
        gpu=lambda w: train_res(w, "gpu"),
        cpus_per_task=lambda w: train_res(w, "cpus_per_task"),
        nodes=lambda w: train_res(w, "nodes"),
        tasks=lambda w: train_res(w, "tasks"),
        mpi=lambda w: train_res(w, "mpi"),
        slurm_extra=lambda w: train_res(w, "slurm_extra"),
    log:
        f"{R}/logs/train/{{model}}/{{train}}/{{loss}}/seed{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{model}}/{{train}}/{{loss}}/seed{{seed}}.tsv"
    shell:
        "{params.launch}harness train --model {params.model:q} --settings {params.settings} --dataset {params.folder:q}"
        " {params.groups} --leakage-eval {params.leakage:q}"
        " --loss {params.loss:q} --loss-params {params.loss_params} --seed {wildcards.seed:q}"
        " --options {params.options} {params.teacher} {params.loss_check} --resume-dir {params.resume:q}"
        " --precision {params.precision:q} --threads {params.threads} --out {output.checkpoint:q} > {log:q} 2>&1"
