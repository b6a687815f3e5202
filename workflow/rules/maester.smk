"""MAESTER pretraining (one run per configured data source) and cover-and-stride inference."""


rule maester_train:
    input:
        lambda w: [manifest(source) for source in config["maester"]["runs"][w.run]],
    output:
        results("maester/{run}/done.json"),
    log:
        results("logs/maester_train/{run}.log"),
    benchmark:
        results("benchmarks/maester_train/{run}.tsv")
    wildcard_constraints:
        run=one_of(config["maester"]["runs"]),
    conda:
        "../../envs/gpu.yaml"
    threads: res("maester_train")["cpus"]
    resources:
        **slurm_resources("maester_train"),
    params:
        launcher=maester_launcher(),
        out_dir=lambda w: results(f"maester/{w.run}"),
        settings=settings_json({k: config["maester"][k] for k in ("model", "train")}),
    shell:
        "DENSELINK_GPUS={resources.gpu:q} {params.launcher} --manifest {input:q} --out {params.out_dir:q} --settings {params.settings:q} > {log:q} 2>&1"


rule maester_infer:
    input:
        done=results("maester/{run}/done.json"),
        manifest=manifest("{dataset}/{seq}"),
    output:
        dense_output(
            results("embeddings/{dataset}/{seq}/maester-{run}-epoch{epoch}.zarr"),
            "maester",
        ),
    log:
        results("logs/maester_infer/{dataset}/{seq}/{run}-epoch{epoch}.log"),
    benchmark:
        results("benchmarks/maester_infer/{dataset}-{seq}-{run}-epoch{epoch}.tsv")
    wildcard_constraints:
        run=one_of(config["maester"]["runs"]),
        epoch=r"\d+",
    conda:
        "../../envs/gpu.yaml"
    threads: res("maester_infer")["cpus"]
    resources:
        **slurm_resources("maester_infer"),
    params:
        checkpoint=lambda w: results(f"maester/{w.run}/checkpoints/epoch{w.epoch}.pt"),
        settings=settings_json(config["maester"]["infer"]),
    shell:
        "DENSELINK_GPUS={resources.gpu:q} denselink maester infer --checkpoint {params.checkpoint:q} --manifest {input.manifest:q} "
        "--out {output:q} --settings {params.settings:q} > {log:q} 2>&1"
