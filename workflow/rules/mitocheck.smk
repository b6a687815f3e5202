"""Mitocheck plates (Appendix C): a generated miniature or local plates, to plate and size manifests."""

MITOCHECK_ROOT = config["mitocheck"]["root"]
GENERATED = config["mitocheck"]["source"] == "synthetic"

if GENERATED:

    MITO_SYNTH = Job("mitocheck_synth", MITOCHECK)

    rule mitocheck_synth:
        output:
            directory(MITOCHECK_ROOT),
        log:
            MITO_SYNTH.log,
        benchmark:
            MITO_SYNTH.benchmark
        conda:
            MITO_SYNTH.conda
        threads: MITO_SYNTH.threads
        resources:
            **MITO_SYNTH.resources,
        params:
            settings=jobs.settings_json(config["mitocheck"]["synth"]),
        shell:
            "denselink data mitocheck synth --out {output:q} --settings {params.settings:q} > {log:q} 2>&1"


PLATE = Job("mitocheck_manifest", "plate{plate}")


rule mitocheck_manifest:
    input:
        plates=[MITOCHECK_ROOT] if GENERATED else [],  # local plates are checked at start-up
    output:
        manifest(f"{MITOCHECK}/plate{{plate}}"),
    log:
        PLATE.log,
    benchmark:
        PLATE.benchmark
    wildcard_constraints:
        plate=r"[1-4]",
    conda:
        PLATE.conda
    threads: PLATE.threads
    resources:
        **PLATE.resources,
    params:
        root=lambda w: MITOCHECK_ROOT,
        strict="--strict" if config["mitocheck"]["strict"] else "",
    shell:
        "denselink data mitocheck manifest --mitocheck-root {params.root:q} --plate {wildcards.plate:q} "
        "--out {output:q} {params.strict} > {log:q} 2>&1"


SIZE = Job("mitocheck_dataset", "{size}")


rule mitocheck_dataset:
    input:
        lambda w: [
            manifest(f"{MITOCHECK}/plate{p}") for p in MITOCHECK_SIZES[int(w.size)]
        ],
    output:
        manifest(f"{MITOCHECK}/{{size}}"),
    log:
        SIZE.log,
    benchmark:
        SIZE.benchmark
    wildcard_constraints:
        size=one_of(MITOCHECK_SIZES),
    conda:
        SIZE.conda
    threads: SIZE.threads
    resources:
        **SIZE.resources,
    shell:
        "denselink data mitocheck dataset --manifests {input:q} --size {wildcards.size:q} --out {output:q} > {log:q} 2>&1"
