"""SAM / muSAM image embeddings, upsampled to pixel resolution."""

EMBED = Job("foundation_embed", "{dataset}/{seq}/{model}-{upsampler}", gpu=True)


rule foundation_embed:
    input:
        manifest("{dataset}/{seq}"),
    output:
        dense_output(
            results(L.EMBEDDING, embedding="{model}-{upsampler}"), "foundation"
        ),
    log:
        EMBED.log,
    benchmark:
        EMBED.benchmark
    wildcard_constraints:
        model=one_of(FOUNDATION_BACKBONES),
        upsampler=one_of(
            {config["foundation"][m]["upsampler"] for m in FOUNDATION_BACKBONES}
        ),
    conda:
        EMBED.conda
    threads: EMBED.threads
    resources:
        **EMBED.resources,
    params:
        settings=lambda w: jobs.settings_json(config["foundation"][w.model]),
    shell:
        "DENSELINK_GPUS={resources.gpu:q} denselink foundation embed --model {wildcards.model:q} --manifest {input:q} "
        "--out {output:q} --settings {params.settings:q} > {log:q} 2>&1"
