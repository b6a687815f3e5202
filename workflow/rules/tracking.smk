"""Trackastra: cached per-sequence data, per-seed training, per-checkpoint tracking and scoring."""


rule tracking_prepare:
    input:
        manifest("{dataset}/{seq}"),
    output:
        results("trackastra_data/{dataset}/{seq}.pt"),
    log:
        results("logs/tracking_prepare/{dataset}/{seq}.log"),
    benchmark:
        results("benchmarks/tracking_prepare/{dataset}-{seq}.tsv")
    conda:
        "../../envs/cpu.yaml"
    threads: res("tracking_prepare")["cpus"]
    resources:
        **slurm_resources("tracking_prepare"),
    params:
        settings=settings_json(config["tracking"]["settings"]),
    shell:
        "denselink tracking prepare --manifest {input:q} --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


rule tracking_score_cache:
    input:
        manifest("{dataset}/{seq}"),
    output:
        results("trackastra_eval/{dataset}/{seq}.pt"),
    log:
        results("logs/tracking_score_cache/{dataset}/{seq}.log"),
    benchmark:
        results("benchmarks/tracking_score_cache/{dataset}-{seq}.tsv")
    conda:
        "../../envs/cpu.yaml"
    threads: res("tracking_score_cache")["cpus"]
    resources:
        **slurm_resources("tracking_score_cache"),
    params:
        settings=settings_json(config["tracking"]["settings"]),
    shell:
        "denselink tracking score-cache --manifest {input:q} --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


rule tracking_train:
    input:
        unpack(train_inputs),
    output:
        results(
            "models/{dataset}/{protocol}/train{train_seq}/{variant}/seed{seed}/done.json"
        ),
    log:
        results(
            "logs/tracking_train/{dataset}/{protocol}/train{train_seq}/{variant}/seed{seed}.log"
        ),
    benchmark:
        results(
            "benchmarks/tracking_train/{dataset}-{protocol}-train{train_seq}-{variant}-seed{seed}.tsv"
        )
    wildcard_constraints:
        variant="(?!pretrained/)[^/]+",
    conda:
        "../../envs/gpu.yaml"
    threads: res("tracking_train")["cpus"]
    resources:
        **slurm_resources("tracking_train"),
    params:
        out_dir=lambda w, output: Path(output[0]).parent,
        optional=lambda w, input: optional_flags(input),
        settings=lambda w: tracking_settings(w.protocol, w.variant),
    shell:
        "DENSELINK_GPUS={resources.gpu:q} denselink tracking train --data {input.data:q} {params.optional} --out {params.out_dir:q} "
        "--seed {wildcards.seed:q} --settings {params.settings:q} > {log:q} 2>&1"


rule tracking_evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=results(
            "metrics/{dataset}/{protocol}/{train_seq}-{eval_seq}/{variant}/seed{seed}.json"
        ),
        res_dir=directory(
            results(
                "tracks/{dataset}/{protocol}/{train_seq}-{eval_seq}/{variant}/seed{seed}"
            )
        ),
    log:
        results(
            "logs/tracking_evaluate/{dataset}/{protocol}/{train_seq}-{eval_seq}/{variant}/seed{seed}.log"
        ),
    benchmark:
        results(
            "benchmarks/tracking_evaluate/{dataset}-{protocol}-{train_seq}-{eval_seq}-{variant}-seed{seed}.tsv"
        )
    wildcard_constraints:
        variant="(?!pretrained/)[^/]+",
    conda:
        "../../envs/cpu.yaml"
    threads: res("tracking_evaluate")["cpus"]
    resources:
        **slurm_resources("tracking_evaluate"),
    params:
        model_dir=lambda w, input: Path(input.model).parent,
        optional=lambda w, input: optional_flags(input),
        epochs=lambda w: config["protocols"][w.protocol]["epochs"],
        settings=lambda w: tracking_settings(w.protocol, w.variant),
    shell:
        "denselink tracking evaluate --model-dir {params.model_dir:q} --manifest {input.manifest:q} "
        "--score-cache {input.score_cache:q} {params.optional} "
        "--protocol {wildcards.protocol:q} --epochs {params.epochs:q} --out {output.metrics:q} --res-dir {output.res_dir:q} "
        "--dataset {wildcards.dataset:q} --variant {wildcards.variant:q} --seed {wildcards.seed:q} "
        "--train-seq {wildcards.train_seq:q} --eval-seq {wildcards.eval_seq:q} --settings {params.settings:q} "
        "> {log:q} 2>&1"


rule tracking_evaluate_pretrained:
    input:
        manifest=manifest("{dataset}/{eval_seq}"),
    output:
        metrics=results(
            "metrics/{dataset}/{protocol}/{train_seq}-{eval_seq}/pretrained/seed{seed}.json"
        ),
        res_dir=directory(
            results(
                "tracks/{dataset}/{protocol}/{train_seq}-{eval_seq}/pretrained/seed{seed}"
            )
        ),
    log:
        results(
            "logs/tracking_evaluate/{dataset}/{protocol}/{train_seq}-{eval_seq}/pretrained/seed{seed}.log"
        ),
    benchmark:
        results(
            "benchmarks/tracking_evaluate/{dataset}-{protocol}-{train_seq}-{eval_seq}-pretrained-seed{seed}.tsv"
        )
    conda:
        "../../envs/cpu.yaml"
    threads: res("tracking_evaluate")["cpus"]
    resources:
        **slurm_resources("tracking_evaluate"),
    params:
        pretrained=config["tracking"]["pretrained_model"],
        epochs=lambda w: config["protocols"][w.protocol]["epochs"],
        settings=lambda w: tracking_settings(w.protocol, "pretrained"),
    shell:
        "denselink tracking evaluate --pretrained {params.pretrained:q} --manifest {input.manifest:q} "
        "--protocol {wildcards.protocol:q} --epochs {params.epochs:q} --out {output.metrics:q} --res-dir {output.res_dir:q} "
        "--dataset {wildcards.dataset:q} --variant pretrained --seed {wildcards.seed:q} "
        "--train-seq {wildcards.train_seq:q} --eval-seq {wildcards.eval_seq:q} --settings {params.settings:q} "
        "> {log:q} 2>&1"
