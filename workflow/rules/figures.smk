"""Appendix C figures: pretraining compute, transfer across data, pretraining data size."""

FIGURES = Job("figures_appendix_c", "{study}")


rule figures_appendix_c:
    input:
        metrics=lambda w: grid.appc_targets(config, w.study),
        baseline=grid.appc_baseline(config),
    output:
        png=report(
            results(L.FIGURE, ext="png"),
            caption="../report/appendix_c.rst",
            category="Appendix C",
        ),
        svg=results(L.FIGURE, ext="svg"),
        points=results(L.FIGURE, ext="json"),
    log:
        FIGURES.log,
    benchmark:
        FIGURES.benchmark
    conda:
        FIGURES.conda
    threads: FIGURES.threads
    resources:
        **FIGURES.resources,
    params:
        out_dir=lambda w, output: Path(output.png).parent,
        expect=lambda w: grid.study_variants(config, w.study),
        settings=lambda w: jobs.figure_settings(config),  # a study runs: its section is present
    shell:
        "denselink figures appendix-c --study {wildcards.study:q} --metrics {input.metrics:q} "
        "--baseline {input.baseline:q} --expect {params.expect:q} --out-dir {params.out_dir:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"
