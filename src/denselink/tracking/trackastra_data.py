"""trackastra 0.4.1 without lightning: the ``trackastra.data`` package loaded name by name.

``trackastra/data/__init__.py`` imports every data module, among them ``distributed``, whose first
lines import ``lightning`` (about 6 s of every tracking job's start-up) for a ``LightningDataModule``
that denselink never uses. :func:`install` registers ``trackastra.data`` as a package whose names
are those of that ``__init__``, each imported from its own submodule on first use (PEP 562), so
``from trackastra.data import CTCData`` and trackastra's own ``from trackastra.data import ...``
(``trackastra.model``) work unchanged, and ``lightning`` loads only if a ``distributed`` name is
used. ``tracking train`` needs one of those, ``BalancedBatchSampler``: it is copied, unchanged,
into :mod:`denselink.tracking.sampler` (docs/deviations.md). ``denselink.tracking`` calls
:func:`install` on import; it imports nothing itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

# the names trackastra/data/__init__.py exports, by submodule (trackastra 0.4.1)
EXPORTS: dict[str, tuple[str, ...]] = {
    "augmentations": ("AugmentationPipeline", "RandomCrop"),
    "data": ("CTCData", "_ctc_lineages", "collate_sequence_padding", "extract_features_regionprops"),
    "distributed": ("BalancedBatchSampler", "BalancedDataModule", "BalancedDistributedSampler"),
    "example_data": ("example_data_bacteria", "example_data_fluo_3d", "example_data_hela"),
    "utils": ("filter_track_df", "load_tiff_timeseries", "load_tracklet_links"),
    "wrfeat": ("WRFeatures", "build_windows", "get_features"),
}
SOURCE = {name: module for module, names in EXPORTS.items() for name in names}


def install() -> None:
    """Register the lazy ``trackastra.data`` package (once; no-op if trackastra.data is loaded)."""
    if "trackastra.data" in sys.modules:
        return
    spec = importlib.util.find_spec("trackastra")
    if spec is None or spec.origin is None:
        return  # trackastra missing: the import that needs it will say so
    folder = Path(spec.origin).parent / "data"
    package = types.ModuleType("trackastra.data", "trackastra's data package, names loaded on first use")
    package.__path__ = [str(folder)]
    package.__package__ = "trackastra.data"

    def __getattr__(name: str):  # noqa: N807 (the module-level hook of PEP 562)
        if name not in SOURCE:
            raise AttributeError(f"module 'trackastra.data' has no attribute {name!r}")
        value = getattr(importlib.import_module(f"trackastra.data.{SOURCE[name]}"), name)
        setattr(package, name, value)
        return value

    package.__getattr__ = __getattr__
    sys.modules["trackastra.data"] = package
