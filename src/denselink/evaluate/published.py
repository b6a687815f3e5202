"""The paper's published Table 1 (Dalinghaus, Archit, Pape, MIDL 2026), as data.

Values are LNK mean and variance over 8 seeds as printed in the paper; ``None`` variance means
a single deterministic run (the pretrained Trackastra model). Keys: ``(dataset, row, agg)`` with
``row`` in ``retrained|pretrained|sam|musam|maester`` and ``agg`` ``None`` for the default column.
"""

from __future__ import annotations

DATASETS = ("Fluo-N2DL-HeLa", "DIC-C2DH-HeLa")

TABLE1_LNK: dict[tuple[str, str, str | None], tuple[float, float | None]] = {
    ("Fluo-N2DL-HeLa", "retrained", None): (0.9922, 3.19e-07),
    ("Fluo-N2DL-HeLa", "pretrained", None): (0.9904, None),
    ("Fluo-N2DL-HeLa", "sam", "mma"): (0.9923, 2.4e-07),
    ("Fluo-N2DL-HeLa", "sam", "centroid"): (0.9924, 4.6e-07),
    ("Fluo-N2DL-HeLa", "musam", "mma"): (0.9930, 2.1e-07),
    ("Fluo-N2DL-HeLa", "musam", "centroid"): (0.9930, 2.0e-07),
    ("Fluo-N2DL-HeLa", "maester", "mma"): (0.9935, 4.2e-07),
    ("Fluo-N2DL-HeLa", "maester", "centroid"): (0.9944, 4.2e-07),
    ("DIC-C2DH-HeLa", "retrained", None): (0.9859, 1.78e-05),
    ("DIC-C2DH-HeLa", "pretrained", None): (0.9815, None),
    ("DIC-C2DH-HeLa", "sam", "mma"): (0.9890, 5.9e-06),
    ("DIC-C2DH-HeLa", "sam", "centroid"): (0.9884, 1.5e-05),
    ("DIC-C2DH-HeLa", "musam", "mma"): (0.9898, 1.8e-06),
    ("DIC-C2DH-HeLa", "musam", "centroid"): (0.9869, 2.6e-06),
    ("DIC-C2DH-HeLa", "maester", "mma"): (0.9857, 4.1e-06),
    ("DIC-C2DH-HeLa", "maester", "centroid"): (0.9805, 1.7e-05),
}


def published_lnk(dataset: str, row: str, agg: str | None) -> tuple[float, float | None] | None:
    """The paper's (mean, variance) LNK for a Table 1 cell, or ``None`` if the paper has no such cell."""
    return TABLE1_LNK.get((dataset, row, agg))
