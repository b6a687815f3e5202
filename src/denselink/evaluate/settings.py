"""Settings of ``evaluate table``; importable without pandas or scipy."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from denselink.settings import StageSettings
from denselink.vocabulary import FUSIONS, PROTOCOLS, FusionMode, Protocol


class TableSettings(StageSettings):
    """Settings of ``denselink evaluate table``."""

    protocols: list[Protocol] = Field(
        default=list(PROTOCOLS),
        description="protocols to report, one part each (runs of that protocol only)",
    )
    main_fusion: FusionMode = Field(
        default=FUSIONS[0],
        description="fusion mode of the main rows (other fusions get extra rows); a section without runs of "
        "it takes the fusion its embedding rows share",
    )
    dataset_roles: dict[str, Literal["study", "positive_control"]] = Field(
        default_factory=dict,
        description="role of each dataset (config datasets.NAME.role); a positive control's sections are "
        "marked as such",
    )
    confidence: float = Field(
        default=0.95,
        gt=0,
        lt=1,
        description="level of the t interval of each difference to the re-trained baseline (paired t for "
        "the project's runs, Welch t for ingested ones)",
    )
