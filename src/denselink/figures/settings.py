"""Settings of ``figures appendix-c``; importable without pandas or matplotlib."""

from __future__ import annotations

from pydantic import Field

from denselink.settings import StageSettings


class FigureSettings(StageSettings):
    """Settings of ``denselink figures appendix-c``."""

    run_labels: dict[str, str] = Field(
        default={},
        description="display names of MAESTER runs, e.g. {'mitocheck100': 'Mitocheck 100 %'}; "
        "runs not listed are shown by name",
    )
    synthetic_runs: list[str] = Field(
        default=[],
        description="MAESTER runs pretrained on generated data (e.g. synthetic Mitocheck plates); their "
        "labels say 'synthetic'. The workflow fills it from the data sources of maester.runs",
    )
