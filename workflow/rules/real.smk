"""The real-data study (`snakemake real_gain`): downsampled CTC data, the control features, the result.

Its arms reuse every other rule (MAESTER pretraining and inference, features, the hand-crafted feature
of workflow/rules/features.smk, Trackastra training and scoring); this file adds the pipeline's
downsampled copy of a dataset, the inference of a MAESTER run's initial weights and
`denselink evaluate real-gain`.
"""

real_study.check_real_gain(config)
REAL = config["real_gain"]
REAL_OUT = Path(REAL["out"])


DOWNSAMPLE = Job("data_downsample", "{dataset}")


rule data_downsample:
    input:
        unpack(bind(checkpoint_inputs.raw_dataset, checkpoints=checkpoints)),
    output:
        directory(results(real_study.DOWNSAMPLED)),
    log:
        DOWNSAMPLE.log,
    benchmark:
        DOWNSAMPLE.benchmark
    wildcard_constraints:
        dataset=one_of(
            n for n, s in config["datasets"].items() if s.get("downsample", 1) > 1
        ),
    conda:
        DOWNSAMPLE.conda
    threads: DOWNSAMPLE.threads
    resources:
        **DOWNSAMPLE.resources,
    params:
        sequences=lambda w: config["datasets"][w.dataset]["sequences"],
        factor=lambda w: config["datasets"][w.dataset]["downsample"],
        # the folder's path, known before a pending download is done (a dry run formats the command)
        dataset_dir=lambda w: Layout.of(config).dataset_dir(w.dataset),
    shell:
        "denselink data downsample --dataset-dir {params.dataset_dir:q} --sequences {params.sequences:q} "
        "--factor {params.factor:q} --out {output:q} > {log:q} 2>&1"


INFER_INITIAL = Job("maester_infer_initial", "{dataset}/{seq}/maester-{run}-init")


# maester_infer on the run's seeded initial weights (the same command, env and settings).
use rule maester_infer as maester_infer_initial with:
    input:
        checkpoint=bind(checkpoint_inputs.initial_checkpoint, checkpoints=checkpoints),
        manifest=manifest("{dataset}/{seq}"),
    output:
        dense_output(results(L.EMBEDDING, embedding="maester-{run}-init"), "maester"),
    log:
        INFER_INITIAL.log,
    benchmark:
        INFER_INITIAL.benchmark
    threads: INFER_INITIAL.threads
    resources:
        **INFER_INITIAL.resources,


REAL_GAIN = Job("real_gain", "real_gain")


rule real_gain_evaluate:
    input:
        real_study.input_files(config) if REAL["datasets"] else [],
        caches=list(real_spec.score_caches(config).values()),
    output:
        json=REAL_OUT,
        png=report(
            REAL_OUT.with_suffix(".png"),
            caption="../report/real_gain.rst",
            category="Real data",
        ),
        markdown=REAL_OUT.with_suffix(".md"),
    log:
        REAL_GAIN.log,
    benchmark:
        REAL_GAIN.benchmark
    conda:
        REAL_GAIN.conda
    threads: REAL_GAIN.threads
    resources:
        **REAL_GAIN.resources,
    params:
        spec=bind(real_spec.real_gain_spec),
        configs=[str(p) for p in workflow.overwrite_configfiles] or ["config.yaml"],
        version=REAL["version"],
        settings=jobs.settings_json(REAL.get("settings", {})),
    shell:
        "denselink evaluate real-gain --spec {params.spec:q} --config-file {params.configs:q} "
        "--version {params.version:q} --out {output.json:q} --plot {output.png:q} --markdown {output.markdown:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"


rule real_gain:
    input:
        rules.real_gain_evaluate.output,
