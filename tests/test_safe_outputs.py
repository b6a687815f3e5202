"""Outputs never destroy what denselink did not write; removing an old output is explicit (--force)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from denselink import cli
from denselink.atomic import MARKER, atomic_path, check_output, claim_directory, sidecar, write_json
from denselink.errors import OutputError

SYNTH = json.dumps({"shape": [32, 32], "n_frames": 3, "n_cells": 2, "sequences": ["01"], "seed": 0})


def _absent(scratch: Path, name: str) -> str:
    return str(scratch / name)  # inputs are never read: the output check comes first


# command -> argv for an output at ``target`` (commands with --out-dir write target.name inside it)
COMMANDS: dict[str, Callable[[Path, Path], list[str]]] = {
    "data synth": lambda t, s: ["data", "synth", "--out", str(t)],
    "init": lambda t, s: ["init", _absent(s, "ctc"), "--out", str(t), "--no-plan"],
    "data validate": lambda t, s: [
        "data", "validate", "--dataset-dir", _absent(s, "ds"), "--dataset", "D", "--seq", "01",
        "--out", str(t),
    ],
    "data mitocheck manifest": lambda t, s: [
        "data", "mitocheck", "manifest", "--mitocheck-root", _absent(s, "m"), "--plate", "1", "--out", str(t),
    ],
    "data mitocheck dataset": lambda t, s: [
        "data", "mitocheck", "dataset", "--manifests", _absent(s, "p.json"), "--out", str(t),
    ],
    "data mitocheck synth": lambda t, s: ["data", "mitocheck", "synth", "--out", str(t)],
    "maester train": lambda t, s: ["maester", "train", "--manifest", _absent(s, "m.json"), "--out", str(t)],
    "maester infer": lambda t, s: [
        "maester", "infer", "--checkpoint", _absent(s, "e.pt"), "--manifest", _absent(s, "m.json"),
        "--out", str(t),
    ],
    "foundation embed": lambda t, s: [
        "foundation", "embed", "--model", "sam", "--manifest", _absent(s, "m.json"), "--out", str(t),
    ],
    "features aggregate": lambda t, s: [
        "features", "aggregate", "--embedding", _absent(s, "e.zarr"), "--manifest", _absent(s, "m.json"),
        "--agg", "mma", "--out", str(t),
    ],
    "data downsample": lambda t, s: [
        "data", "downsample", "--dataset-dir", _absent(s, "ds"), "--sequences", "01", "--factor", "2",
        "--out", str(t),
    ],
    "evaluate real-gain": lambda t, s: [
        "evaluate", "real-gain", "--spec", "{}", "--config-file", _absent(s, "c.yaml"), "--version", "1",
        "--out", str(t), "--plot", str(t.parent / "p.png"),
    ],
    "features handcrafted": lambda t, s: [
        "features", "handcrafted", "--manifest", _absent(s, "m.json"), "--out", str(t),
    ],
    "tracking prepare": lambda t, s: [
        "tracking", "prepare", "--manifest", _absent(s, "m.json"), "--out", str(t),
    ],
    "tracking train": lambda t, s: [
        "tracking", "train", "--data", _absent(s, "c.pt"), "--out", str(t), "--seed", "0",
    ],
    "tracking score-cache": lambda t, s: [
        "tracking", "score-cache", "--manifest", _absent(s, "m.json"), "--out", str(t),
    ],
    "tracking evaluate --out": lambda t, s: [
        "tracking", "evaluate", "--model-dir", _absent(s, "run"), "--manifest", _absent(s, "m.json"),
        "--out", str(t), "--res-dir", _absent(s, "res"),
    ],
    "tracking evaluate --res-dir": lambda t, s: [
        "tracking", "evaluate", "--model-dir", _absent(s, "run"), "--manifest", _absent(s, "m.json"),
        "--out", _absent(s, "m.json"), "--res-dir", str(t),
    ],
    "tracking track --out": lambda t, s: [
        "tracking", "track", "--model", _absent(s, "run"), "--images", _absent(s, "img"),
        "--masks", _absent(s, "masks"), "--out", str(t),
    ],
    "tracking track --table": lambda t, s: [
        "tracking", "track", "--model", _absent(s, "run"), "--images", _absent(s, "img"),
        "--masks", _absent(s, "masks"), "--out", _absent(s, "RES"), "--table", str(t),
    ],
    "evaluate table --out-csv": lambda t, s: [
        "evaluate", "table", "--metrics", _absent(s, "a.json"), "--out-csv", str(t),
        "--out-md", _absent(s, "t.md"),
    ],
    "evaluate table --out-md": lambda t, s: [
        "evaluate", "table", "--metrics", _absent(s, "a.json"), "--out-csv", _absent(s, "t.csv"),
        "--out-md", str(t),
    ],
    "evaluate ingest": lambda t, s: [
        "evaluate", "ingest", "--csv", _absent(s, "a.csv"), "--dataset", "D", "--variant", "retrained",
        "--out-dir", str(t.parent),
    ],
    "plan": lambda t, s: ["plan", "--configfile", _absent(s, "c.yaml"), "--json", str(t)],
    "figures appendix-c": lambda t, s: [
        "figures", "appendix-c", "--study", "transfer", "--metrics", _absent(s, "a.json"),
        "--out-dir", str(t.parent),
    ],
}  # fmt: skip
TARGET_NAME = {
    "evaluate ingest": "seed0.json",
    "figures appendix-c": "transfer.png",
    "tracking track --table": "tracks.csv",
}


def _user_folder(path: Path) -> dict[str, str]:
    (path / "sub").mkdir(parents=True)
    files = {"f": "x\n", "sub/notes.txt": "my notes\n"}
    for name, text in files.items():
        (path / name).write_text(text)
    return files


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("denselink: output error: "), lines
    return lines[-1]


NOT_OURS = (
    "exists and was not written by denselink (no .denselink-output marker); choose another output path, "
    "or move it away (denselink never removes what it did not write)"
)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", ["folder", "file"])
@pytest.mark.parametrize("force", [False, True])
def test_user_data_at_the_output_path_is_refused_and_kept(
    command: str, kind: str, force: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / TARGET_NAME.get(command, "c")
    if kind == "folder":
        files = _user_folder(target)
    else:
        target.parent.mkdir(parents=True)
        target.write_text("precious\n")
    assert cli.main(COMMANDS[command](target, tmp_path) + (["--force"] if force else [])) == 2
    assert _error_line(capsys) == f"denselink: output error: {target}: {NOT_OURS}"
    if kind == "folder":
        assert {name: (target / name).read_text() for name in files} == files
    else:
        assert target.read_text() == "precious\n"


def test_every_command_with_an_output_is_covered() -> None:
    covered = {name.split(" --")[0] for name in COMMANDS}
    no_output = {"data download", "data mitocheck", "evaluate score"}  # evaluate score only prints
    with_outputs = {" ".join(key) for key in cli.COMMANDS} - no_output
    assert with_outputs | {f"data mitocheck {c}" for c in ("manifest", "dataset", "synth")} == covered


def test_own_earlier_output_is_replaced_on_rerun(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert cli.main(["data", "synth", "--out", str(out), "--settings", SYNTH]) == 0
    marker = json.loads((out / MARKER).read_text())
    assert marker["written_by"] == "data synth" and "01/t000.tif" in marker["files"]
    first = (out / "01" / "t001.tif").read_bytes()
    assert cli.main(["data", "synth", "--out", str(out), "--settings", SYNTH]) == 0
    assert (out / "01" / "t001.tif").read_bytes() == first
    manifest = tmp_path / "m.json"
    argv = [
        "data",
        "validate",
        "--dataset-dir",
        str(out),
        "--dataset",
        "D",
        "--seq",
        "01",
        "--out",
        str(manifest),
    ]
    assert cli.main(argv) == 0
    assert json.loads(sidecar(manifest).read_text())["written_by"] == "data validate"
    assert cli.main(argv) == 0


def test_another_commands_output_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert cli.main(["data", "synth", "--out", str(out), "--settings", SYNTH]) == 0
    argv = ["data", "validate", "--dataset-dir", str(out), "--dataset", "D", "--seq", "01", "--out", str(out)]
    assert cli.main(argv) == 2
    assert "is the output of `denselink data synth`, not of `denselink data validate`" in _error_line(capsys)
    assert (out / "01" / "t000.tif").is_file()


def test_a_file_added_to_an_output_folder_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert cli.main(["data", "synth", "--out", str(out), "--settings", SYNTH]) == 0
    (out / "01" / "notes.txt").write_text("mine\n")
    assert cli.main(["data", "synth", "--out", str(out), "--settings", SYNTH]) == 2
    assert "holds '01/notes.txt', which `denselink data synth` did not write" in _error_line(capsys)
    assert (out / "01" / "notes.txt").read_text() == "mine\n"


def test_an_edited_output_file_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    write_json(out, {"a": 1}, "data validate")
    check_output(out, "data validate")  # unchanged: may be replaced
    out.write_text('{"a": 1, "edited": true}\n')
    with pytest.raises(OutputError, match="was changed after `denselink data validate` wrote it"):
        write_json(out, {"a": 2}, "data validate")
    assert json.loads(out.read_text()) == {"a": 1, "edited": True}


def test_force_replaces_another_denselink_output(tmp_path: Path) -> None:
    json_out = tmp_path / "m.json"
    write_json(json_out, {"a": 1}, "data validate")
    json_out.write_text('{"a": 1, "edited": true}\n')
    write_json(json_out, {"a": 2}, "data validate", force=True)
    assert json.loads(json_out.read_text()) == {"a": 2}
    assert cli.main(["data", "synth", "--out", str(json_out), "--settings", SYNTH, "--force"]) == 0
    assert (json_out / "01" / "t000.tif").is_file() and not sidecar(json_out).exists()


def test_force_never_removes_a_user_folder_or_a_file_denselink_did_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    files = _user_folder(out)
    assert cli.main(["data", "synth", "--out", str(out), "--settings", SYNTH, "--force"]) == 2
    assert _error_line(capsys) == f"denselink: output error: {out}: {NOT_OURS}"
    assert {name: (out / name).read_text() for name in files} == files
    ds = tmp_path / "ds"
    assert cli.main(["data", "synth", "--out", str(ds), "--settings", SYNTH]) == 0
    (ds / "01" / "notes.txt").write_text("mine\n")
    argv = ["data", "validate", "--dataset-dir", str(tmp_path), "--dataset", "D", "--seq", "01"]
    assert cli.main([*argv, "--out", str(ds), "--force"]) == 2
    assert _error_line(capsys) == (
        f"denselink: output error: {ds}: holds '01/notes.txt', which `denselink data synth` did not write; "
        "choose another output path, or move it away (denselink never removes what it did not write)"
    )
    assert (ds / "01" / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("force", [False, True])
def test_working_directory_and_its_parents_are_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], force: bool
) -> None:
    files = _user_folder(tmp_path / "project")
    (tmp_path / "project" / "here").mkdir()
    monkeypatch.chdir(tmp_path / "project" / "here")
    for out in ("..", "."):
        argv = ["data", "synth", "--out", out, "--settings", SYNTH] + (["--force"] if force else [])
        assert cli.main(argv) == 2
        assert _error_line(capsys) == (
            f"denselink: output error: {out}: is or contains the working directory "
            f"({tmp_path / 'project' / 'here'}); never replaced, not even with --force"
        )
    assert {name: (tmp_path / "project" / name).read_text() for name in files} == files


def _mark_as_synth_output(folder: Path) -> None:
    """A marker as `data synth` writes it, listing every file: what --force would otherwise replace."""
    listed = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    (folder / MARKER).write_text(json.dumps({"written_by": "data synth", "files": listed}))


@pytest.mark.parametrize("marked", [False, True])
def test_a_parent_of_home_is_never_replaced_not_even_with_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], marked: bool
) -> None:
    """`data synth --out <a parent of $HOME> --force` once replaced the folder, home included."""
    home = tmp_path / "users" / "me"
    files = _user_folder(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    if marked:
        _mark_as_synth_output(tmp_path / "users")
    argv = ["data", "synth", "--out", str(tmp_path / "users"), "--settings", SYNTH, "--force"]
    assert cli.main(argv) == 2
    assert _error_line(capsys) == (
        f"denselink: output error: {tmp_path / 'users'}: is or contains the home folder ({home}); "
        "never replaced, not even with --force"
    )
    assert {name: (home / name).read_text() for name in files} == files


def test_a_marked_folder_holding_the_working_directory_is_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _user_folder(tmp_path / "ds" / "project")
    _mark_as_synth_output(tmp_path / "ds")
    monkeypatch.chdir(tmp_path / "ds" / "project" / "sub")
    assert cli.main(["data", "synth", "--out", str(tmp_path / "ds"), "--settings", SYNTH, "--force"]) == 2
    assert _error_line(capsys) == (
        f"denselink: output error: {tmp_path / 'ds'}: is or contains the working directory "
        f"({tmp_path / 'ds' / 'project' / 'sub'}); never replaced, not even with --force"
    )
    assert {name: (tmp_path / "ds" / "project" / name).read_text() for name in files} == files


def test_stale_cleanup_removes_only_its_own_temporaries(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    ours = tmp_path / ".tmp-m.json-0123abcd"
    theirs = [tmp_path / ".tmp-m.json-notes", tmp_path / ".tmp-m.json-0123abcd.bak"]
    for path in [ours, *theirs]:
        path.write_text("x")
    write_json(out, {"a": 1})
    assert not ours.exists() and all(path.read_text() == "x" for path in theirs)


def test_an_empty_folder_at_the_output_path_is_taken(tmp_path: Path) -> None:
    """Snakemake creates the folder of an output such as ``{run}/done.json`` before the job runs."""
    run = tmp_path / "run"
    run.mkdir()
    assert claim_directory(run, "tracking train") == run and (run / MARKER).is_file()
    out = tmp_path / "ds"
    out.mkdir()
    assert cli.main(["data", "synth", "--out", str(out), "--settings", SYNTH]) == 0
    assert (out / "01").is_dir() and (out / MARKER).is_file()


def test_run_directory_is_claimed_once_and_taken_back_by_its_command(tmp_path: Path) -> None:
    run = claim_directory(tmp_path / "run", "tracking train")
    (run / "checkpoints").mkdir()
    with atomic_path(run / "checkpoints" / "epoch000.pt") as tmp:  # inside a claimed folder: no marker
        tmp.write_bytes(b"weights")
    assert claim_directory(run, "tracking train") == run
    assert (run / "checkpoints" / "epoch000.pt").read_bytes() == b"weights"
    with pytest.raises(OutputError, match="is the output of `denselink tracking train`"):
        claim_directory(run, "maester train")
    user = tmp_path / "user"
    files = _user_folder(user)
    for force in (False, True):
        with pytest.raises(OutputError, match="not written by denselink"):
            claim_directory(user, "maester train", force=force)
    assert {name: (user / name).read_text() for name in files} == files
    assert claim_directory(run, "maester train", force=True) == run  # another command's run folder
    assert sorted(p.name for p in run.iterdir()) == [MARKER]


def test_an_empty_folder_holds_nothing_to_lose(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()  # Snakemake creates the folder of maester/{run}/done.json before the job runs
    assert claim_directory(run, "maester train") == run
    empty = tmp_path / "m.json"
    empty.mkdir()
    write_json(empty, {"a": 1}, "data validate")
    assert json.loads(empty.read_text()) == {"a": 1}


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_json_outputs_are_strict(tmp_path: Path, value: float) -> None:
    out = tmp_path / "done.json"
    with pytest.raises(OutputError, match="non-finite number"):
        write_json(out, {"final_loss": value}, "maester train")
    assert not out.exists() and not list(tmp_path.iterdir())
