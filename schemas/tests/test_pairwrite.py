"""mtap_schemas.pairwrite (issue 32): files that belong together appear together, with the umask's mode,
and a reader checks a recorded file's sha256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mtap_schemas.pairwrite import RecordedFileError, check_recorded, write_together


def _pair(folder: Path, n: int) -> None:
    with write_together() as stage:
        stage.data(folder / "t.bin", bytes([n]) * 10)
        stage.text(folder / "d.json", f'{{"n": {n}}}')


def test_both_files_are_written(tmp_path: Path) -> None:
    _pair(tmp_path, 1)
    assert (tmp_path / "t.bin").read_bytes() == b"\x01" * 10 and (tmp_path / "d.json").read_text() == '{"n": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "t.bin"]


def test_an_error_in_the_block_leaves_the_old_pair(tmp_path: Path) -> None:
    _pair(tmp_path, 1)
    with pytest.raises(RuntimeError), write_together() as stage:
        stage.data(tmp_path / "t.bin", b"new")
        raise RuntimeError("between the two files")
    assert (tmp_path / "t.bin").read_bytes() == b"\x01" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "t.bin"]


@pytest.mark.parametrize("existed", [True, False])
def test_a_failed_second_rename_rolls_the_first_back(tmp_path: Path, monkeypatch, existed: bool) -> None:
    if existed:
        _pair(tmp_path, 1)
    real = os.replace

    def replace(src, dst):
        if str(dst).endswith("d.json"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        _pair(tmp_path, 2)
    monkeypatch.setattr(os, "replace", real)
    if existed:
        assert (tmp_path / "t.bin").read_bytes() == b"\x01" * 10 and (tmp_path / "d.json").read_text() == '{"n": 1}'
        assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "t.bin"]
    else:
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_the_mode_follows_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        _pair(tmp_path, 1)
    finally:
        os.umask(old)
    for name in ("t.bin", "d.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_check_recorded_names_a_missing_truncated_or_changed_file(tmp_path: Path) -> None:
    data = b"x" * 100
    (tmp_path / "t.bin").write_bytes(data)
    record = {"path": "t.bin", "sha256": hashlib.sha256(data).hexdigest()}
    doc = tmp_path / "d.json"
    assert check_recorded(doc, record, "table") == (tmp_path / "t.bin").resolve()
    (tmp_path / "t.bin").write_bytes(data[:50])
    with pytest.raises(RecordedFileError, match=r"t\.bin: table sha256 .* differs from the .* d\.json records"):
        check_recorded(doc, record, "table")
    (tmp_path / "t.bin").unlink()
    with pytest.raises(RecordedFileError, match=r"t\.bin: table missing \(d\.json records it"):
        check_recorded(doc, record, "table")
    with pytest.raises(RecordedFileError, match="leaves"):
        check_recorded(doc, {"path": "../t.bin", "sha256": record["sha256"]}, "table")
