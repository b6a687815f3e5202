"""Per-cell feature tables: one embedding x one aggregation x one sequence; the hand-crafted control."""

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


HANDCRAFTED = Job("features_handcrafted", "{dataset}/{seq}/handcrafted-mma")


rule features_handcrafted:
    input:
        manifest("{dataset}/{seq}"),
    output:
        results(L.FEATURES, embedding="handcrafted", agg="mma"),
    log:
        HANDCRAFTED.log,
    benchmark:
        HANDCRAFTED.benchmark
    conda:
        HANDCRAFTED.conda
    threads: HANDCRAFTED.threads
    resources:
        **HANDCRAFTED.resources,
    params:
        settings=jobs.settings_json(config["features"].get("handcrafted", {})),
    shell:
        "denselink features handcrafted --manifest {input:q} --out {output:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"


ruleorder: features_handcrafted > features_aggregate
