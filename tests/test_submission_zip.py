"""`make submission`: the zip participants upload, and the folders it refuses."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from unlearning_challenge import cli
from unlearning_challenge.platforms.submission_zip import (
    DEFAULT_METADATA,
    SubmissionError,
    check_submission,
    pack_submission,
)

ROOT = Path(__file__).resolve().parents[1]
GOOD = "def unlearning(net, retain_loader, forget_loader, val_loader):\n    return net\n"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    sub = tmp_path / "my_method"
    sub.mkdir()
    (sub / "unlearning.py").write_text("from helpers import scale\n\n" + GOOD)
    (sub / "helpers.py").write_text("scale = 2\n")
    (sub / "weights").mkdir()
    (sub / "weights" / "mask.npy").write_bytes(b"\x93NUMPY")
    (sub / "__pycache__").mkdir()
    (sub / "__pycache__" / "unlearning.cpython-311.pyc").write_bytes(b"\0")
    (sub / ".ipynb_checkpoints").mkdir()
    (sub / ".ipynb_checkpoints" / "x.py").write_text("")
    (sub / ".DS_Store").write_bytes(b"\0")
    return sub


def test_zip_holds_the_files_at_its_root_plus_a_metadata_without_command(folder, tmp_path):
    packed = pack_submission(folder, tmp_path / "out" / "sub.zip")
    assert packed.added_metadata
    with zipfile.ZipFile(packed.path) as zf:
        names = zf.namelist()
        assert names == sorted(["helpers.py", "metadata", "unlearning.py", "weights/mask.npy"])
        metadata = yaml.safe_load(zf.read("metadata"))
    assert set(metadata) == {"description"}
    assert zf.filename.endswith("sub.zip")


def test_default_output_is_dist_folder_name_zip(folder, tmp_path):
    packed = pack_submission(folder, out_dir=tmp_path / "dist")
    assert packed.path == tmp_path / "dist" / "my_method.zip"


def test_zip_is_deterministic(folder, tmp_path):
    first = pack_submission(folder, tmp_path / "a.zip").path.read_bytes()
    (folder / "helpers.py").touch()
    assert pack_submission(folder, tmp_path / "b.zip").path.read_bytes() == first


def test_an_existing_metadata_without_command_is_kept(folder, tmp_path):
    (folder / "metadata").write_text("description: my method\n")
    packed = pack_submission(folder, tmp_path / "s.zip")
    assert not packed.added_metadata
    with zipfile.ZipFile(packed.path) as zf:
        assert zf.read("metadata") == b"description: my method\n"


def test_metadata_with_a_command_is_refused(folder, tmp_path):
    (folder / "metadata").write_text("command: python unlearning.py\n")
    with pytest.raises(SubmissionError, match=r"has a `command` .* run it in parallel with the ingestion program"):
        pack_submission(folder, tmp_path / "s.zip")
    assert not (tmp_path / "s.zip").exists()


def test_metadata_with_other_keys_is_refused(folder):
    (folder / "metadata").write_text("description: x\ninput: http://example.com/x.zip\n")
    with pytest.raises(SubmissionError, match=r"key\(s\) \['input'\]"):
        check_submission(folder)


def test_folder_without_unlearning_py_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "model.py").write_text(GOOD)
    with pytest.raises(SubmissionError, match=r"has no unlearning.py at its top level"):
        check_submission(empty)


def test_nested_unlearning_py_is_pointed_at(tmp_path):
    outer = tmp_path / "outer"
    (outer / "inner").mkdir(parents=True)
    (outer / "inner" / "unlearning.py").write_text(GOOD)
    with pytest.raises(SubmissionError, match=r"found inner/unlearning.py: give that folder instead"):
        check_submission(outer)


@pytest.mark.parametrize("source, message", [
    ("def unlearning(net):\n    return net\n", r"takes 1 positional argument\(s\)"),
    ("def forget(net, a, b, c):\n    return net\n", r"does not define a top-level function `unlearning"),
    ("def unlearning(net, a, b, c)\n    return net\n", r"syntax error at line 1"),
])
def test_bad_unlearning_py_is_refused(tmp_path, source, message):
    sub = tmp_path / "s"
    sub.mkdir()
    (sub / "unlearning.py").write_text(source)
    with pytest.raises(SubmissionError, match=message):
        check_submission(sub)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(SubmissionError, match="does not exist"):
        check_submission(tmp_path / "nope")
    (tmp_path / "unlearning.py").write_text(GOOD)
    with pytest.raises(SubmissionError, match="is not a folder"):
        check_submission(tmp_path / "unlearning.py")


def test_zip_inside_the_folder_is_refused(folder):
    with pytest.raises(SubmissionError, match="outside the submission folder"):
        pack_submission(folder, folder / "me.zip")


def test_cli_exit_codes_and_messages(folder, tmp_path, capsys):
    assert cli.main(["submission", str(folder), "--output", str(tmp_path / "ok.zip")]) == 0
    out = capsys.readouterr().out
    assert "added a `metadata` file without a command" in out and "ok.zip" in out
    (folder / "unlearning.py").unlink()
    assert cli.main(["submission", str(folder), "--output", str(tmp_path / "bad.zip")]) == 1
    assert "make submission: error:" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["do_nothing", "finetune", "neggrad_plus", "scrub", "random_relabel",
                                  "reinit_finetune"])
def test_baselines_package_cleanly(name, tmp_path):
    packed = pack_submission(ROOT / "starting_kit" / "baselines" / name, tmp_path / f"{name}.zip")
    assert packed.files == ["metadata", "unlearning.py"]
    assert packed.warnings == []


def test_make_submission_target(tmp_path, folder):
    """The Makefile target passes the folder and the output through."""
    done = subprocess.run(
        ["make", "-s", "-o", "install", "-o", ".venv/.installed", "submission",
         f"SUBMISSION={folder}", f"SUBMISSION_ZIP={tmp_path / 'via_make.zip'}", f"PY={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    with zipfile.ZipFile(tmp_path / "via_make.zip") as zf:
        assert "unlearning.py" in zf.namelist() and zf.read("metadata") == DEFAULT_METADATA.encode()
