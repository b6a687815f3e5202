"""Table 1 from the metrics JSONs of every cell of the grid."""


rule evaluate_table:
    input:
        table1_targets(config),
    output:
        csv=report(
            results("tables/table1.csv"),
            caption="../report/table1.rst",
            category="Table 1",
        ),
        md=results("tables/table1.md"),
    log:
        results("logs/evaluate_table/table1.log"),
    benchmark:
        results("benchmarks/evaluate_table/table1.tsv")
    conda:
        "../../envs/cpu.yaml"
    threads: res("evaluate_table")["cpus"]
    resources:
        **slurm_resources("evaluate_table"),
    params:
        protocols=config["table1"]["protocols"],
        settings=settings_json(
            {
                **config["table1"]["settings"],
                "main_fusion": config["tracking"]["fusion"],
            }
        ),
    shell:
        "denselink evaluate table --metrics {input:q} --out-csv {output.csv:q} --out-md {output.md:q} "
        "--protocols {params.protocols:q} --settings {params.settings:q} > {log:q} 2>&1"


rule fusion_gain_plot:
    input:
        FUSION_GAIN_PLOT,
    output:
        report(
            results("report/fusion_gain.png"),
            caption="../report/fusion_gain.rst",
            category="Benchmarks",
        ),
    log:
        results("logs/fusion_gain_plot/fusion_gain.log"),
    benchmark:
        results("benchmarks/fusion_gain_plot/fusion_gain.tsv")
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    resources:
        **slurm_resources("fusion_gain_plot"),
    shell:
        "cp {input:q} {output:q} > {log:q} 2>&1"
