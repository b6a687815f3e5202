"""MAESTER pretraining (one run per configured data source) and cover-and-stride inference."""

MAESTER_TRAIN = Job("maester_train", "{run}", gpu=True)


# A checkpoint: maester_infer reads the epoch's weights, listed once the run is done.
checkpoint maester_train:
    input:
        lambda w: [manifest(source) for source in config["maester"]["runs"][w.run]],
    output:
        results(L.MAESTER_DONE),
    log:
        MAESTER_TRAIN.log,
    benchmark:
        MAESTER_TRAIN.benchmark
    conda:
        MAESTER_TRAIN.conda
    threads: MAESTER_TRAIN.threads
    resources:
        **MAESTER_TRAIN.resources,
    params:
        launcher=jobs.maester_launcher(config),
        out_dir=lambda w: results(L.MAESTER_RUN, run=w.run),
        settings=jobs.settings_json(
            {k: config["maester"][k] for k in ("model", "train")}
        ),
    shell:
        "DENSELINK_GPUS={resources.gpu:q} {params.launcher} --manifest {input:q} --out {params.out_dir:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"


MAESTER_INFER = Job(
    "maester_infer", f"{{dataset}}/{{seq}}/{L.MAESTER_EMBEDDING}", gpu=True
)


rule maester_infer:
    input:
        checkpoint=maester_checkpoint,
        manifest=manifest("{dataset}/{seq}"),
    output:
        dense_output(results(L.MAESTER_EMBEDDING_VOLUME), "maester"),
    log:
        MAESTER_INFER.log,
    benchmark:
        MAESTER_INFER.benchmark
    conda:
        MAESTER_INFER.conda
    threads: MAESTER_INFER.threads
    resources:
        **MAESTER_INFER.resources,
    params:
        settings=jobs.settings_json(config["maester"]["infer"]),
    shell:
        "DENSELINK_GPUS={resources.gpu:q} denselink maester infer --checkpoint {input.checkpoint:q} "
        "--manifest {input.manifest:q} --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"
