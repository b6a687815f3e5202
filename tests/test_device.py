"""Device choice: auto follows the job's GPU request, and a missing GPU stops the job by name."""

from __future__ import annotations

import pytest
import torch

from denselink.device import GPU_ENV, DeviceError, device_record, gpus_requested, resolve_device


def test_auto_is_cpu_when_the_job_requested_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GPU_ENV, raising=False)
    assert resolve_device("auto", "tracking.settings.device") == torch.device("cpu")
    monkeypatch.setenv(GPU_ENV, "0")
    assert resolve_device("auto", "tracking.settings.device") == torch.device("cpu")


@pytest.mark.parametrize(("setting", "gpus"), [("auto", "1"), ("cuda", "0"), ("cuda", "2")])
def test_wanting_cuda_without_cuda_stops_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, setting: str, gpus: str
) -> None:
    monkeypatch.setenv(GPU_ENV, gpus)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a node whose CUDA is broken
    with pytest.raises(
        DeviceError, match=r"maester\.infer\.device.*no CUDA device.*maester\.infer\.device: cpu"
    ):
        resolve_device(setting, "maester.infer.device")


def test_cpu_is_honoured_even_when_gpus_were_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GPU_ENV, "4")
    assert resolve_device("cpu", "maester.train.device") == torch.device("cpu")


def test_bad_gpu_count_and_unknown_device_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GPU_ENV, "one")
    with pytest.raises(DeviceError, match=GPU_ENV):
        gpus_requested()
    monkeypatch.delenv(GPU_ENV)
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu", "foundation.sam.device")


def test_device_record_names_the_device() -> None:
    record = device_record(torch.device("cpu"))
    assert record["device"] == "cpu" and record["device_name"]
