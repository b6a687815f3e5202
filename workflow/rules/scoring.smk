"""Scoring a cell: the ground truth cached once per sequence, every checkpoint of a cell's seeds scored by
one job, the published model scored alone. What a job reads and is told: denselink.pipeline.scoring.
"""

evaluate_inputs = bind(scoring.evaluate_inputs)


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
        SCORE_CACHE.conda
    threads: SCORE_CACHE.threads
    resources:
        **SCORE_CACHE.resources,
    params:
        settings=jobs.settings_json(config["tracking"]["settings"]),
    shell:
        "denselink tracking score-cache --manifest {input:q} --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


EVALUATE = Job("tracking_evaluate", L.CELL)


# One job scores every checkpoint of every seed of a cell (the score cache and windows read once).
rule tracking_evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=scoring.cell_outputs(config, L.METRICS),
        res_dirs=[directory(p) for p in scoring.cell_outputs(config, L.TRACKS)],
    log:
        EVALUATE.log,
    benchmark:
        EVALUATE.benchmark
    wildcard_constraints:
        variant=grid.TRAINED_VARIANT,
    conda:
        EVALUATE.conda
    threads: EVALUATE.threads
    resources:
        **EVALUATE.resources,
    params:
        models=bind(scoring.model_dirs),
        seeds=[str(seed) for seed in config["tracking"]["seeds"]],
        optional=flags("features"),
        epochs=bind(scoring.scored_epochs),
        settings=tracking_settings,
    shell:
        "denselink tracking evaluate --model-dir {params.models:q} --seed {params.seeds:q} "
        "--manifest {input.manifest:q} --score-cache {input.score_cache:q} {params.optional} "
        "--protocol {wildcards.protocol:q} --epochs {params.epochs:q} --out {output.metrics:q} "
        "--res-dir {output.res_dirs:q} --dataset {wildcards.dataset:q} --variant {wildcards.variant:q} "
        "--train-seq {wildcards.train_seq:q} --eval-seq {wildcards.eval_seq:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"


PRETRAINED = Job(
    "tracking_evaluate_pretrained",
    "{dataset}/{protocol}/{train_seq}-{eval_seq}",
    resources="tracking_evaluate",
)


# The published model (the one variant not trained) is scored from the eval manifest alone (seed 0).
rule tracking_evaluate_pretrained:
    input:
        manifest=manifest("{dataset}/{eval_seq}"),
    output:
        metrics=results(L.METRICS, variant="pretrained", seed=0),
        res_dir=directory(results(L.TRACKS, variant="pretrained", seed=0)),
    log:
        PRETRAINED.log,
    benchmark:
        PRETRAINED.benchmark
    conda:
        PRETRAINED.conda
    threads: PRETRAINED.threads
    resources:
        **PRETRAINED.resources,
    params:
        model=config["tracking"]["pretrained_model"],
        settings=bind(scoring.published_settings),
    shell:
        "denselink tracking evaluate --pretrained {params.model:q} --manifest {input.manifest:q} "
        "--protocol {wildcards.protocol:q} --out {output.metrics:q} --res-dir {output.res_dir:q} "
        "--dataset {wildcards.dataset:q} --variant pretrained --seed 0 "
        "--train-seq {wildcards.train_seq:q} --eval-seq {wildcards.eval_seq:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"
