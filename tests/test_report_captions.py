"""The report's captions describe their run: only the rows its table has, generated data named."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
from docutils.core import publish_parts

from denselink.pipeline.checks import load_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
CONFIGS = {"full": REPO / "config.yaml", "mini": REPO / "workflow" / "configs" / "mini.yaml"}


@pytest.fixture(scope="module")
def configs() -> dict[str, dict]:
    return {name: load_config([path], SCHEMA) for name, path in CONFIGS.items()}


def caption(name: str, config: dict, **wildcards: str) -> str:
    """A caption rendered as Snakemake's report renders it (its Jinja2 environment, then docutils, which
    must not warn); the reStructuredText on one line."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string((REPO / "workflow" / "report" / f"{name}.rst").read_text())
    text = template.render(snakemake=SimpleNamespace(config=config, wildcards=SimpleNamespace(**wildcards)))
    publish_parts(text, writer="html", settings_overrides={"halt_level": 2, "report_level": 2})
    return " ".join(text.split())


def test_table1_caption_lists_only_the_rows_the_table_has(configs) -> None:
    mini = caption("table1", configs["mini"])
    assert "Trackastra re-trained, Trackastra with fused MAESTER features (centroid aggregation" in mini
    for absent in ("pretrained", "SAM", "μSAM", "mma", "fusion ablations add_token", "published values"):
        assert absent not in mini
    full = caption("table1", configs["full"])
    rows = (
        "Trackastra re-trained, the published pretrained Trackastra model, Trackastra with fused SAM (vit_b) "
        "features, Trackastra with fused μSAM (vit_b_lm) features, Trackastra with fused MAESTER features "
        "(mma and centroid aggregation, fusion add_wrfeat; fusion ablations add_token, concat, etultra "
        "as extra rows)"
    )
    assert (
        rows in full and "on Fluo-N2DL-HeLa, DIC-C2DH-HeLa" in full and "its published values stand" in full
    )


def test_generated_mitocheck_is_called_synthetic(configs) -> None:
    for study in ("compute_scaling", "transfer", "data_scaling"):
        assert "**Synthetic Mitocheck:**" in caption("appendix_c", configs["mini"], study=study)
        assert "ynthetic" not in caption("appendix_c", configs["full"], study=study)
    assert (
        "the datasets Synth-Motion, Synth-HeLa and the Mitocheck plates (synthetic Mitocheck) are"
        in caption("workflow", configs["mini"])
    )
    assert "Generated data" not in caption("workflow", configs["full"])


def test_the_fusion_gain_figure_is_called_a_stored_benchmark_result(configs) -> None:
    assert caption("fusion_gain", configs["mini"]).startswith(
        "**Stored benchmark result, not computed by this run:**"
    )
