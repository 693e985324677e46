"""``python -m xet_pyodide hash`` against hf_xet and hashlib (run as a real subprocess)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from tests.cpython._cli_helpers import run_cli
from tests.cpython._core_helpers import hf_hash_files, random_input
from xet_pyodide.cli import COMMANDS, main


@pytest.fixture
def sample_files(tmp_path: Path) -> list[Path]:
    rng = random.Random(1)
    contents = {
        "empty.bin": b"",
        "abc.txt": b"abc",
        "text.bin": random_input(rng, 700_000, "text"),
        "floats.bin": random_input(rng, 1_300_000, "floats"),
        "name with spaces.bin": rng.randbytes(200_000),
    }
    paths = []
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    return paths


def test_hash_plain_output(sample_files, tmp_path):
    result = run_cli("hash", *(p.name for p in sample_files), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    expected = hf_hash_files(sample_files)
    lines = result.stdout.splitlines()
    assert lines == [
        f"{h} {size} {p.name}" for p, (h, size) in zip(sample_files, expected, strict=True)
    ]


def test_hash_json_output(sample_files, tmp_path):
    result = run_cli("hash", "--json", *map(str, sample_files), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    expected = hf_hash_files(sample_files)
    assert [set(r) for r in records] == [{"path", "hash", "size", "sha256"}] * len(sample_files)
    for record, path, (h, size) in zip(records, sample_files, expected, strict=True):
        assert record["path"] == str(path)
        assert (record["hash"], record["size"]) == (h, size)
        assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file_is_a_clean_error(tmp_path):
    (tmp_path / "ok.bin").write_bytes(b"abc")
    result = run_cli("hash", "ok.bin", "missing.bin", cwd=tmp_path)
    assert result.returncode == 1
    assert "missing.bin" in result.stderr and "No such file" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_directory_is_a_clean_error(tmp_path):
    result = run_cli("hash", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and str(tmp_path) in result.stderr


def test_usage_errors(tmp_path):
    assert run_cli(cwd=tmp_path).returncode == 2
    result = run_cli("hash", cwd=tmp_path)
    assert result.returncode == 2 and "FILE" in result.stderr
    assert run_cli("frobnicate", cwd=tmp_path).returncode == 2


def test_main_in_process(tmp_path, capsys):
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    assert main(["hash", str(path)]) == 0
    out = capsys.readouterr().out
    assert out == f"55b9df318a7c45f470d57b04d8ca79a15b0637ffe94b25041a58d00c3528afff 3 {path}\n"
    assert "hash" in {c.name for c in COMMANDS}
