"""Per-cell feature tables: one embedding x one aggregation x one sequence."""


rule features_aggregate:
    input:
        embedding=results("embeddings/{dataset}/{seq}/{embedding}.zarr"),
        manifest=manifest("{dataset}/{seq}"),
    output:
        results("features/{dataset}/{seq}/{embedding}-{agg}.parquet"),
    log:
        results("logs/features_aggregate/{dataset}/{seq}/{embedding}-{agg}.log"),
    benchmark:
        results("benchmarks/features_aggregate/{dataset}-{seq}-{embedding}-{agg}.tsv")
    wildcard_constraints:
        agg="centroid|mma",
    conda:
        "../../envs/cpu.yaml"
    threads: res("features_aggregate")["cpus"]
    resources:
        **slurm_resources("features_aggregate"),
    shell:
        "denselink features aggregate --embedding {input.embedding:q} --manifest {input.manifest:q} "
        "--agg {wildcards.agg:q} --out {output:q} > {log:q} 2>&1"
