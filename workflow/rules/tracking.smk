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
        "denselink tracking prepare --manifest {input} --out {output} --settings {params.settings:q} > {log} 2>&1"


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
        "denselink tracking train --data {input.data} {params.optional} --out {params.out_dir} "
        "--seed {wildcards.seed} --settings {params.settings:q} > {log} 2>&1"


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
        "denselink tracking evaluate --model-dir {params.model_dir} --manifest {input.manifest} {params.optional} "
        "--protocol {wildcards.protocol} --epochs {params.epochs} --out {output.metrics} --res-dir {output.res_dir} "
        "--dataset {wildcards.dataset} --variant {wildcards.variant} --seed {wildcards.seed} "
        "--train-seq {wildcards.train_seq} --eval-seq {wildcards.eval_seq} --settings {params.settings:q} "
        "> {log} 2>&1"


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
        "denselink tracking evaluate --pretrained {params.pretrained} --manifest {input.manifest} "
        "--protocol {wildcards.protocol} --epochs {params.epochs} --out {output.metrics} --res-dir {output.res_dir} "
        "--dataset {wildcards.dataset} --variant pretrained --seed {wildcards.seed} "
        "--train-seq {wildcards.train_seq} --eval-seq {wildcards.eval_seq} --settings {params.settings:q} "
        "> {log} 2>&1"
