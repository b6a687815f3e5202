"""Raw data (CTC download, generated data, Mitocheck plates) to checked sequence manifests."""

SYNTH = Job("data_synth", "{dataset}")


# Checkpoints: data_validate lists the frames and masks they write as its inputs (validate_inputs).
checkpoint data_synth:
    output:
        directory(Layout.of(config).dataset_dir("{dataset}")),
    log:
        SYNTH.log,
    benchmark:
        SYNTH.benchmark
    wildcard_constraints:
        dataset=one_of(grid.datasets_with(config, "synthetic")),
    conda:
        SYNTH.conda
    threads: SYNTH.threads
    resources:
        **SYNTH.resources,
    params:
        settings=lambda w: jobs.settings_json(config["datasets"][w.dataset]["synth"]),
    shell:
        "denselink data synth --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


DOWNLOAD = Job("data_download", "{dataset}")


checkpoint data_download:
    output:
        directory(Layout.of(config).dataset_dir("{dataset}")),
    log:
        DOWNLOAD.log,
    benchmark:
        DOWNLOAD.benchmark
    wildcard_constraints:
        dataset=one_of(grid.datasets_with(config, "ctc", download=True)),
    conda:
        DOWNLOAD.conda
    threads: DOWNLOAD.threads
    resources:
        **DOWNLOAD.resources,
    params:
        data_root=lambda w, output: Path(output[0]).parent,
        url=lambda w: config["datasets"][w.dataset]["url"],
        sha256=lambda w: config["datasets"][w.dataset]["sha256"] or "",
    shell:
        "denselink data download --dataset {wildcards.dataset:q} --data-root {params.data_root:q} "
        "--url {params.url:q} --sha256 {params.sha256:q} > {log:q} 2>&1"


VALIDATE = Job("data_validate", "{dataset}/{seq}")


rule data_validate:
    input:
        unpack(validate_inputs),
    output:
        results(L.MANIFEST, source="{dataset}/{seq}"),
    log:
        VALIDATE.log,
    benchmark:
        VALIDATE.benchmark
    wildcard_constraints:
        dataset=one_of(config["datasets"]),
    conda:
        VALIDATE.conda
    threads: VALIDATE.threads
    resources:
        **VALIDATE.resources,
    params:
        dataset_dir=lambda w: real_study.dataset_folder(config, w.dataset),
        min_frames=lambda w: required_frames(config, w.dataset, w.seq)[0],
        min_frames_key=lambda w: required_frames(config, w.dataset, w.seq)[1],
    shell:
        "denselink data validate --dataset-dir {params.dataset_dir:q} --dataset {wildcards.dataset:q} "
        "--seq {wildcards.seq:q} --min-frames {params.min_frames:q} --min-frames-key {params.min_frames_key:q} "
        "--out {output:q} > {log:q} 2>&1"
