"""Config versions: which version a config was written for, and what changed since (CHANGELOG.md).

A config names its version in ``config_version``. One without it was written before the key existed
(version 1); it is still read, with today's meanings, and the workflow notes what changed since.
"""

from __future__ import annotations

from typing import Any

CONFIG_VERSION = 2
"""The version of the config keys this workflow reads."""

CHANGES: dict[int, tuple[str, ...]] = {
    2: (
        "table1, appendix_c and each Appendix C study run only when their section is present "
        "(before: absent sections ran with the paper's defaults)",
        "storage.keep_dense.maester and .foundation default to false (before: true)",
        "datasets.NAME.folder added; dataset names may contain '+'",
        "under clean no run stops early (tracking.early_stopping.retrained false in config.yaml); "
        "protocols.paper.early_stopping added",
        "table1.settings.bootstrap_samples and bootstrap_seed removed; confidence is the t interval's level",
        "datasets.NAME.role, datasets.NAME.synth.keep_pairs, datasets.NAME.downsample, features.handcrafted, "
        "maester.train.save_initial, real_gain, tracking.settings.etultra_dim and "
        "foundation.*.anyup.weights_path added; fusion mode etultra added",
        "foundation.*.anyup.source defaults to vendored (before: github)",
    ),
}
"""What each version changed in the meaning of a config (details: CHANGELOG.md)."""


def version_notes(config: dict[str, Any]) -> list[str]:
    """Notes for a config written for an older version (none for a current one)."""
    version = config.get("config_version")
    since = 1 if version is None else int(version)
    if since >= CONFIG_VERSION:
        return []
    head = (
        "the config has no config_version (written before version 2)"
        if version is None
        else f"the config is of config_version {version}"
    )
    changes = [change for v in range(since + 1, CONFIG_VERSION + 1) for change in CHANGES.get(v, ())]
    return [
        f"{head}; it is read as version {CONFIG_VERSION}, whose changes are: "
        + "; ".join(changes)
        + f" (CHANGELOG.md). Add config_version: {CONFIG_VERSION} once checked."
    ]
