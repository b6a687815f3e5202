"""Outputs of trackastra-pretrained-feats' own model class, stored for the ``etultra`` fusion's tests.

trackastra-pretrained-feats (``trackastra[etultra]``) cannot be installed from PyPI here: it requires
sam2, whose PyPI release is a source distribution that builds a CUDA extension. Its model class only
needs trackastra and transformers, so this file was run once where the wheel was installed without
its dependencies (``pip install --no-deps trackastra_pretrained_feats==0.0.2`` plus ``transformers``):

    PYTHONPATH=src python tests/etultra_reference.py tests/data/etultra_reference.pt

It builds ``TrackingTransformerwPretrainedFeats`` with seeded random weights, runs it in eval mode on a
seeded random padded batch and stores the weights, the inputs, the logits and the versions used.
``tests/test_etultra.py`` loads the weights into denselink's ``etultra`` model and compares the logits.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

import torch

CONFIG = {"coord_dim": 2, "feat_dim": 7, "d_model": 16, "nhead": 2, "num_encoder_layers": 1}
CONFIG |= {"num_decoder_layers": 2, "pos_embed_per_dim": 8, "feat_embed_per_dim": 1, "window": 4}
EMBED_DIM, REDUCED_DIM = 6, 5


def reference_inputs() -> dict[str, torch.Tensor]:
    """A padded batch of 2 windows of 9 tokens: coords (t, y, x), wrfeat, learned features, padding."""
    generator = torch.Generator().manual_seed(11)
    times = torch.randint(0, CONFIG["window"], (2, 9, 1), generator=generator).float()
    coords = torch.cat([times, 100 * torch.rand(2, 9, 2, generator=generator)], dim=-1)
    padding = torch.zeros(2, 9, dtype=torch.bool)
    padding[1, 7:] = True
    return {
        "coords": coords,
        "features": torch.randn(2, 9, CONFIG["feat_dim"], generator=generator),
        "pretrained_features": torch.randn(2, 9, EMBED_DIM, generator=generator),
        "padding_mask": padding,
    }


def main(out: str) -> None:
    from trackastra_pretrained_feats import TrackingTransformerwPretrainedFeats

    torch.manual_seed(4)
    model = TrackingTransformerwPretrainedFeats(
        **CONFIG, pretrained_feat_dim=EMBED_DIM, reduced_pretrained_feat_dim=REDUCED_DIM
    ).eval()
    inputs = reference_inputs()
    with torch.no_grad():
        logits = model(**inputs)
    produced = {name: version(name) for name in ("trackastra_pretrained_feats", "trackastra", "torch")}
    torch.save({"produced_with": produced, "state_dict": model.state_dict(), "inputs": inputs,
                "logits": logits}, out)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
