"""The atomic writers: the file or folder appears complete or not at all, nothing left beside it."""

import os
import shutil
import stat

import pytest

from unlearning_challenge.atomic import copy_file, copy_tree, write_bytes, write_text


@pytest.mark.parametrize("durable", [True, False])
def test_writers_leave_only_the_target_with_the_usual_mode(tmp_path, durable):
    write_bytes(tmp_path / "a.bin", b"\x00\x01", durable=durable)
    write_text(tmp_path / "b.txt", "héllo", durable=durable)
    copy_file(tmp_path / "a.bin", tmp_path / "c.bin", durable=durable)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.bin"]
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o666 & ~mask


def test_copy_tree_matches_copytree(tmp_path):
    source = tmp_path / "source"
    (source / "pkg" / "__pycache__").mkdir(parents=True)
    (source / "unlearning.py").write_text("x = 1\n")
    (source / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"")
    (source / "link").symlink_to("/etc/hostname")
    os.chmod(source, 0o750)
    ignore = shutil.ignore_patterns("__pycache__")
    copy_tree(source, tmp_path / "copy", ignore=ignore)
    shutil.copytree(source, tmp_path / "expected", symlinks=True, ignore=ignore)
    for name in ("copy", "expected"):
        folder = tmp_path / name
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750
        assert (folder / "link").is_symlink() and os.readlink(folder / "link") == "/etc/hostname"
        assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == ["link", "pkg", "unlearning.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "expected", "source"]


def test_copy_tree_leaves_nothing_when_the_copy_fails(tmp_path):
    with pytest.raises(OSError):
        copy_tree(tmp_path / "missing", tmp_path / "copy")
    assert list(tmp_path.iterdir()) == []
