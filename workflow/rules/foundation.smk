"""SAM / muSAM image embeddings, upsampled to pixel resolution."""


rule foundation_embed:
    input:
        manifest("{dataset}/{seq}"),
    output:
        dense_output(
            results("embeddings/{dataset}/{seq}/{model}-{upsampler}.zarr"),
            "foundation",
        ),
    log:
        results("logs/foundation_embed/{dataset}/{seq}/{model}-{upsampler}.log"),
    benchmark:
        results("benchmarks/foundation_embed/{dataset}-{seq}-{model}-{upsampler}.tsv")
    wildcard_constraints:
        model=one_of(FOUNDATION_BACKBONES),
        upsampler=one_of(
            {config["foundation"][m]["upsampler"] for m in FOUNDATION_BACKBONES}
        ),
    conda:
        "../../envs/gpu.yaml"
    threads: res("foundation_embed")["cpus"]
    resources:
        **slurm_resources("foundation_embed"),
    params:
        settings=lambda w: settings_json(config["foundation"][w.model]),
    shell:
        "DENSELINK_GPUS={resources.gpu:q} denselink foundation embed --model {wildcards.model:q} --manifest {input:q} --out {output:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"
