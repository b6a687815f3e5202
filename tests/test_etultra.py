"""The ``etultra`` arm: Trackastra's own pretrained-feature model, trained and scored as the paper's fusion.

- the ``etultra`` fused model computes what trackastra-pretrained-feats'
  ``TrackingTransformerwPretrainedFeats`` computes: its weights and logits stored by
  ``tests/etultra_reference.py`` (the class itself where it is installed, also under autocast);
- denselink's shared-window scoring equals the model's own forward for it;
- the whole arm runs end to end (embedding -> per-cell features -> train -> evaluate) with a
  RANDOM-WEIGHT SAM encoder and AnyUp (no released weights here): a test of the code path, not of
  the arm's accuracy;
- the full config gives it a row group in Table 1 for SAM and μSAM.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from etultra_reference import CONFIG, EMBED_DIM, REDUCED_DIM, reference_inputs
from test_associations import _assert_predict, _fused_windows, _model, toy  # noqa: F401 (fixture)

from denselink import cli
from denselink.pipeline.checks import load_config
from denselink.pipeline.grid import table1_variants
from denselink.torch_files import load_torch_file
from denselink.tracking.associations import Nodes
from denselink.tracking.fusion import build_model
from denselink.tracking.settings import TrackastraSettings
from denselink.vocabulary import parse_variant

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "etultra_reference.pt"
RENAMED = {
    "ptfeat_proj.0.": "fusion_proj.module.0.",
    "ptfeat_norm.": "fusion_proj.module.1.",
    "proj.": "proj.module.",
}


def denselink_etultra() -> torch.nn.Module:
    return build_model(CONFIG, {"fusion": "etultra", "embed_dim": EMBED_DIM, "etultra_dim": REDUCED_DIM})


def load_their_weights(model: torch.nn.Module, theirs: dict[str, torch.Tensor]) -> None:
    """trackastra-pretrained-feats' state dict under denselink's names (plus the identity statistics)."""
    renamed = {}
    for key, value in theirs.items():
        prefix = next((p for p in RENAMED if key.startswith(p)), None)
        renamed[key if prefix is None else RENAMED[prefix] + key[len(prefix) :]] = value
    renamed |= {"feature_mean": torch.zeros(EMBED_DIM), "feature_std": torch.ones(EMBED_DIM)}
    model.load_state_dict(renamed, strict=True)


def denselink_logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    features = torch.cat([inputs["features"], inputs["pretrained_features"]], dim=-1)
    with torch.no_grad():
        return model.eval()(inputs["coords"], features, padding_mask=inputs["padding_mask"])


def test_etultra_equals_the_stored_trackastra_pretrained_feats_logits():
    stored = load_torch_file(REFERENCE)
    assert stored["produced_with"]["trackastra_pretrained_feats"] == "0.0.2"
    model = denselink_etultra()
    load_their_weights(model, stored["state_dict"])
    for key, value in reference_inputs().items():
        assert torch.equal(value, stored["inputs"][key])
    logits = denselink_logits(model, stored["inputs"])
    torch.testing.assert_close(logits, stored["logits"], rtol=0, atol=1e-6)
    assert logits.abs().max() > 0.1  # the comparison is not between zeros


@pytest.mark.parametrize("autocast", [False, True])
def test_etultra_equals_the_installed_class(autocast: bool):
    """Where trackastra-pretrained-feats imports (installed without its sam2 dependency)."""
    module = pytest.importorskip("trackastra_pretrained_feats")
    torch.manual_seed(9)
    theirs = module.TrackingTransformerwPretrainedFeats(
        **CONFIG, pretrained_feat_dim=EMBED_DIM, reduced_pretrained_feat_dim=REDUCED_DIM
    ).eval()
    ours = denselink_etultra()
    load_their_weights(ours, theirs.state_dict())
    inputs = reference_inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        expected = theirs(**inputs)
        got = denselink_logits(ours, inputs)
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_etultra_window_associations_equal_the_models_forward(toy: dict) -> None:  # noqa: F811 (fixture)
    model = _model(2, "etultra")
    assert model.fusion_config["etultra_dim"] == 128
    nodes = Nodes.from_features(toy["features"])
    _assert_predict(model, _fused_windows(toy["features"], toy["table"], model.config["window"]), nodes)


SETTINGS = {"window": 4, "d_model": 32, "num_encoder_layers": 1, "num_decoder_layers": 1, "epochs": 2}
SETTINGS |= {"warmup_epochs": 1, "train_samples": 32, "lr": 2e-3, "crop_size": None, "val_fraction": 0.25}
SETTINGS |= {"fusion": "etultra", "etultra_dim": 16}
RANDOM_SAM = {"random_init": True, "seed": 3, "upsampler": "anyup", "anyup": {"pretrained": False}}
RANDOM_SAM |= {"encoder": {"img_size": 64, "embed_dim": 32, "depth": 1, "num_heads": 2}, "device": "cpu"}


def _run(*argv: str | Path) -> None:
    assert cli.main([str(a) for a in argv]) == 0, argv


def test_etultra_arm_end_to_end_with_random_weights(tmp_path: Path) -> None:
    """RANDOM WEIGHTS (SAM encoder and AnyUp): the arm's code path, not its accuracy."""
    data = tmp_path / "Synth"
    _run("data", "synth", "--out", data, "--settings", json.dumps({"n_frames": 8, "seed": 2}))
    for seq in ("01", "02"):
        manifest = tmp_path / f"{seq}.json"
        _run("data", "validate", "--dataset-dir", data, "--dataset", "Synth", "--seq", seq, "--out", manifest)
        _run("foundation", "embed", "--model", "sam", "--manifest", manifest,
             "--out", tmp_path / f"{seq}.zarr", "--settings", json.dumps(RANDOM_SAM))  # fmt: skip
        _run("features", "aggregate", "--embedding", tmp_path / f"{seq}.zarr", "--manifest", manifest,
             "--agg", "mma", "--out", tmp_path / f"{seq}.parquet")  # fmt: skip
    settings = json.dumps(SETTINGS)
    _run(
        "tracking",
        "prepare",
        "--manifest",
        tmp_path / "02.json",
        "--out",
        tmp_path / "02.pt",
        "--settings",
        settings,
    )
    _run("tracking", "train", "--data", tmp_path / "02.pt", "--features", tmp_path / "02.parquet",
         "--out", tmp_path / "run", "--seed", "0", "--settings", settings)  # fmt: skip
    checkpoint = load_torch_file(tmp_path / "run" / "checkpoints" / "epoch001.pt")
    assert (
        checkpoint["fusion_config"]["fusion"] == "etultra"
        and checkpoint["fusion_config"]["etultra_dim"] == 16
    )
    assert checkpoint["state_dict"]["fusion_proj.module.0.weight"].shape == (
        16,
        checkpoint["fusion_config"]["embed_dim"],
    )
    _run("tracking", "evaluate", "--model-dir", tmp_path / "run", "--manifest", tmp_path / "01.json",
         "--features", tmp_path / "01.parquet", "--protocol", "clean", "--variant", "sam-mma-etultra",
         "--out", tmp_path / "m.json", "--res-dir", tmp_path / "res", "--settings", settings)  # fmt: skip
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["variant"] == "sam-mma-etultra"
    assert len(record["per_epoch"]) == 2 and all(0.0 <= row["LNK"] <= 1.0 for row in record["per_epoch"])
    assert record["DET"] == 1.0  # GT detections, every one kept


def test_full_config_has_an_etultra_row_group():
    config = load_config([REPO / "config.yaml"], REPO / "workflow" / "schemas" / "config.schema.yaml")
    for dataset in config["table1"]["datasets"]:
        etultra = [name for name in table1_variants(config, dataset) if name.endswith("-etultra")]
        backbones = {parse_variant(name).backbone for name in etultra}
        assert {"sam", "musam"} <= backbones
        assert len(etultra) == len(config["table1"]["embeddings"]) * len(config["features"]["aggregations"])
    assert "etultra (trackastra's" in TrackastraSettings.model_fields["fusion"].description
