"""Trackastra: cached per-sequence data, per-seed training, scoring of every checkpoint of a run."""

PREPARE = Job("tracking_prepare", "{dataset}/{seq}")


rule tracking_prepare:
    input:
        manifest("{dataset}/{seq}"),
    output:
        results(L.TRACKASTRA_DATA),
    log:
        PREPARE.log,
    benchmark:
        PREPARE.benchmark
    conda:
        CPU_ENV
    threads: PREPARE.threads
    resources:
        **PREPARE.resources,
    params:
        settings=jobs.settings_json(config["tracking"]["settings"]),
    shell:
        "denselink tracking prepare --manifest {input:q} --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


SCORE_CACHE = Job("tracking_score_cache", "{dataset}/{seq}")


rule tracking_score_cache:
    input:
        manifest("{dataset}/{seq}"),
    output:
        results(L.SCORE_CACHE),
    log:
        SCORE_CACHE.log,
    benchmark:
        SCORE_CACHE.benchmark
    conda:
        CPU_ENV
    threads: SCORE_CACHE.threads
    resources:
        **SCORE_CACHE.resources,
    params:
        settings=jobs.settings_json(config["tracking"]["settings"]),
    shell:
        "denselink tracking score-cache --manifest {input:q} --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


TRAIN = Job(
    "tracking_train", "{dataset}/{protocol}/train{train_seq}/{variant}/seed{seed}"
)


rule tracking_train:
    input:
        unpack(train_inputs),
    output:
        results(L.MODEL),
    log:
        TRAIN.log,
    benchmark:
        TRAIN.benchmark
    wildcard_constraints:
        variant="(?!pretrained$)[^/]+",
    conda:
        GPU_ENV
    threads: TRAIN.threads
    resources:
        **TRAIN.resources,
    params:
        out_dir=lambda w, output: Path(output[0]).parent,
        optional=flags("features", "val_data", "val_features"),
        settings=lambda w: jobs.tracking_settings(config, w.protocol, w.variant),
    shell:
        "DENSELINK_GPUS={resources.gpu:q} denselink tracking train --data {input.data:q} {params.optional} "
        "--out {params.out_dir:q} --seed {wildcards.seed:q} --settings {params.settings:q} > {log:q} 2>&1"


EVALUATE = Job("tracking_evaluate", L.RUN)


# Re-trained and fused runs score their own checkpoints; `pretrained` scores the published model.
rule tracking_evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=results(L.METRICS),
        res_dir=directory(results(L.TRACKS)),
    log:
        EVALUATE.log,
    benchmark:
        EVALUATE.benchmark
    conda:
        CPU_ENV
    threads: EVALUATE.threads
    resources:
        **EVALUATE.resources,
    params:
        model=model_flag,
        optional=flags("score_cache", "features"),
        epochs=lambda w: config["protocols"][w.protocol]["epochs"],
        settings=lambda w: jobs.tracking_settings(config, w.protocol, w.variant),
    shell:
        "denselink tracking evaluate {params.model} --manifest {input.manifest:q} {params.optional} "
        "--protocol {wildcards.protocol:q} --epochs {params.epochs:q} --out {output.metrics:q} "
        "--res-dir {output.res_dir:q} --dataset {wildcards.dataset:q} --variant {wildcards.variant:q} "
        "--seed {wildcards.seed:q} --train-seq {wildcards.train_seq:q} --eval-seq {wildcards.eval_seq:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"
