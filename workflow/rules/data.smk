"""Raw data (CTC download, generated data, Mitocheck plates) to checked sequence manifests."""


# Checkpoints: data_validate lists the frames and masks they write as its inputs (validate_inputs).
checkpoint data_synth:
    output:
        directory(data_dir("{dataset}")),
    log:
        results("logs/data_synth/{dataset}.log"),
    benchmark:
        results("benchmarks/data_synth/{dataset}.tsv")
    wildcard_constraints:
        dataset=one_of(datasets_with("synthetic")),
    conda:
        "../../envs/cpu.yaml"
    threads: res("data_synth")["cpus"]
    resources:
        **slurm_resources("data_synth"),
    params:
        settings=lambda w: settings_json(config["datasets"][w.dataset]["synth"]),
    shell:
        "denselink data synth --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


checkpoint data_download:
    output:
        directory(data_dir("{dataset}")),
    log:
        results("logs/data_download/{dataset}.log"),
    benchmark:
        results("benchmarks/data_download/{dataset}.tsv")
    wildcard_constraints:
        dataset=one_of(datasets_with("ctc", download=True)),
    conda:
        "../../envs/cpu.yaml"
    threads: res("data_download")["cpus"]
    resources:
        **slurm_resources("data_download"),
    params:
        data_root=lambda w, output: Path(output[0]).parent,
        url=lambda w: config["datasets"][w.dataset]["url"],
        sha256=lambda w: (
            f"--sha256 {shlex.quote(config['datasets'][w.dataset]['sha256'])}"
            if config["datasets"][w.dataset]["sha256"]
            else ""
        ),
    shell:
        "denselink data download --dataset {wildcards.dataset:q} --data-root {params.data_root:q} "
        "--url {params.url:q} {params.sha256} > {log:q} 2>&1"


rule data_validate:
    input:
        unpack(validate_inputs),
    output:
        results("data/{dataset}/{seq}/manifest.json"),
    log:
        results("logs/data_validate/{dataset}/{seq}.log"),
    benchmark:
        results("benchmarks/data_validate/{dataset}-{seq}.tsv")
    wildcard_constraints:
        dataset=one_of(config["datasets"]),
    conda:
        "../../envs/cpu.yaml"
    threads: res("data_validate")["cpus"]
    resources:
        **slurm_resources("data_validate"),
    params:
        dataset_dir=lambda w: data_dir(w.dataset),
        min_frames=lambda w: required_frames(config, w.dataset, w.seq)[0],
        min_frames_key=lambda w: required_frames(config, w.dataset, w.seq)[1],
    shell:
        "denselink data validate --dataset-dir {params.dataset_dir:q} --dataset {wildcards.dataset:q} "
        "--seq {wildcards.seq:q} --min-frames {params.min_frames:q} --min-frames-key {params.min_frames_key:q} "
        "--out {output:q} > {log:q} 2>&1"


if config["mitocheck"]["source"] == "synthetic":

    rule mitocheck_synth:
        output:
            directory(config["mitocheck"]["root"]),
        log:
            results("logs/mitocheck_synth/mitocheck.log"),
        benchmark:
            results("benchmarks/mitocheck_synth/mitocheck.tsv")
        conda:
            "../../envs/cpu.yaml"
        threads: res("mitocheck_synth")["cpus"]
        resources:
            **slurm_resources("mitocheck_synth"),
        params:
            settings=settings_json(config["mitocheck"]["synth"]),
        shell:
            "denselink data mitocheck synth --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


rule mitocheck_manifest:
    input:
        # a generated miniature comes from mitocheck_synth; local plates are checked at start-up
        plates=(
            [config["mitocheck"]["root"]]
            if config["mitocheck"]["source"] == "synthetic"
            else []
        ),
    output:
        manifest(f"{MITOCHECK}/plate{{plate}}"),
    log:
        results("logs/mitocheck_manifest/plate{plate}.log"),
    benchmark:
        results("benchmarks/mitocheck_manifest/plate{plate}.tsv")
    wildcard_constraints:
        plate=r"[1-4]",
    conda:
        "../../envs/cpu.yaml"
    threads: res("mitocheck_manifest")["cpus"]
    resources:
        **slurm_resources("mitocheck_manifest"),
    params:
        root=lambda w: config["mitocheck"]["root"],
        strict="--strict" if config["mitocheck"]["strict"] else "",
    shell:
        "denselink data mitocheck manifest --mitocheck-root {params.root:q} --plate {wildcards.plate:q} "
        "--out {output:q} {params.strict} > {log:q} 2>&1"


rule mitocheck_dataset:
    input:
        lambda w: [
            manifest(f"{MITOCHECK}/plate{p}") for p in MITOCHECK_SIZES[int(w.size)]
        ],
    output:
        manifest(f"{MITOCHECK}/{{size}}"),
    log:
        results("logs/mitocheck_dataset/{size}.log"),
    benchmark:
        results("benchmarks/mitocheck_dataset/{size}.tsv")
    wildcard_constraints:
        size=one_of(str(s) for s in MITOCHECK_SIZES),
    conda:
        "../../envs/cpu.yaml"
    threads: res("mitocheck_dataset")["cpus"]
    resources:
        **slurm_resources("mitocheck_dataset"),
    shell:
        "denselink data mitocheck dataset --manifests {input:q} --size {wildcards.size:q} --out {output:q} > {log:q} 2>&1"
