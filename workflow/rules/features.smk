"""Per-cell feature tables: one embedding x one aggregation x one sequence."""

AGGREGATE = Job("features_aggregate", "{dataset}/{seq}/{embedding}-{agg}")


rule features_aggregate:
    input:
        embedding=results(L.EMBEDDING),
        manifest=manifest("{dataset}/{seq}"),
    output:
        results(L.FEATURES),
    log:
        AGGREGATE.log,
    benchmark:
        AGGREGATE.benchmark
    conda:
        AGGREGATE.conda
    threads: AGGREGATE.threads
    resources:
        **AGGREGATE.resources,
    shell:
        "denselink features aggregate --embedding {input.embedding:q} --manifest {input.manifest:q} "
        "--agg {wildcards.agg:q} --out {output:q} > {log:q} 2>&1"
