"""Appendix C figures: pretraining compute, transfer across data, pretraining data size."""


rule figures_appendix_c:
    input:
        metrics=lambda w: appc_targets(config, w.study),
        baseline=appc_baseline(config),
    output:
        png=report(
            results("figures/{study}.png"),
            caption="../report/appendix_c.rst",
            category="Appendix C",
        ),
        svg=results("figures/{study}.svg"),
        points=results("figures/{study}.json"),
    log:
        results("logs/figures_appendix_c/{study}.log"),
    benchmark:
        results("benchmarks/figures_appendix_c/{study}.tsv")
    wildcard_constraints:
        study=one_of(STUDIES),
    conda:
        "../../envs/cpu.yaml"
    threads: res("figures_appendix_c")["cpus"]
    resources:
        **slurm_resources("figures_appendix_c"),
    params:
        out_dir=lambda w, output: Path(output.png).parent,
        expect=lambda w: study_variants(config, w.study),
        settings=settings_json(config["appendix_c"]["settings"]),
    shell:
        "denselink figures appendix-c --study {wildcards.study:q} --metrics {input.metrics:q} "
        "--baseline {input.baseline:q} --expect {params.expect:q} --out-dir {params.out_dir:q} "
        "--settings {params.settings:q} > {log:q} 2>&1"
