"""Table 1 from the metrics JSONs of every cell of the grid, and the fusion-gain plot for the report."""

TABLE = Job("evaluate_table", "table1")


rule evaluate_table:
    input:
        grid.table1_targets(config),
    output:
        csv=report(
            results(L.TABLE1, ext="csv"),
            caption="../report/table1.rst",
            category="Table 1",
        ),
        md=results(L.TABLE1, ext="md"),
    log:
        TABLE.log,
    benchmark:
        TABLE.benchmark
    conda:
        TABLE.conda
    threads: TABLE.threads
    resources:
        **TABLE.resources,
    params:
        protocols=lambda w: config["table1"]["protocols"],  # a job exists only with a table1 section
        settings=lambda w: jobs.table_settings(config),
    shell:
        "denselink evaluate table --metrics {input:q} --out-csv {output.csv:q} --out-md {output.md:q} "
        "--protocols {params.protocols:q} --settings {params.settings:q} > {log:q} 2>&1"


FUSION_GAIN = Job("fusion_gain_plot", "fusion_gain")


rule fusion_gain_plot:
    input:
        FUSION_GAIN_PLOT,
    output:
        report(
            results(L.FUSION_GAIN_REPORT),
            caption="../report/fusion_gain.rst",
            category="Benchmarks",
        ),
    log:
        FUSION_GAIN.log,
    benchmark:
        FUSION_GAIN.benchmark
    conda:
        FUSION_GAIN.conda
    threads: 1
    resources:
        **FUSION_GAIN.resources,
    shell:
        "cp {input:q} {output:q} > {log:q} 2>&1"
