"""Trackastra: cached per-sequence data and per-seed training (scoring: workflow/rules/scoring.smk)."""

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
        PREPARE.conda
    threads: PREPARE.threads
    resources:
        **PREPARE.resources,
    params:
        settings=jobs.settings_json(config["tracking"]["settings"]),
    shell:
        "denselink tracking prepare --manifest {input:q} --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


TRAIN = Job(
    "tracking_train",
    "{dataset}/{protocol}/train{train_seq}/{variant}/seed{seed}",
    gpu=True,
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
        variant=grid.TRAINED_VARIANT,
    conda:
        TRAIN.conda
    threads: TRAIN.threads
    resources:
        **TRAIN.resources,
    params:
        out_dir=str(Path(results(L.MODEL)).parent),
        optional=flags("features", "val_data", "val_features"),
        settings=tracking_settings,
    shell:
        "DENSELINK_GPUS={resources.gpu:q} denselink tracking train --data {input.data:q} {params.optional} "
        "--out {params.out_dir:q} --seed {wildcards.seed:q} --settings {params.settings:q} > {log:q} 2>&1"
