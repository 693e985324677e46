"""``python -m xet_pyodide upload`` against the local CAS server (real subprocess)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from tests.cpython._cli_helpers import run_cli
from tests.portable.upload_checks import make_data


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("upload", *args)


def test_cli_upload_with_token_url_then_token(cas_server_factory, tmp_path: Path) -> None:
    import hf_xet

    server = cas_server_factory()
    datas = [make_data("random", 2_500_000, 1), b"", make_data("text", 70_000, 2)]
    paths = []
    for i, data in enumerate(datas):
        paths.append(tmp_path / f"file-{i}.bin")
        paths[-1].write_bytes(data)
    ((name, value),) = server.token_headers.items()
    done = cli(
        "--token-url",
        server.token_url("write"),
        "--token-header",
        f"{name}: {value}",
        *map(str, paths),
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [f["path"] for f in out["files"]] == [str(p) for p in paths]
    assert [f["hash"] for f in out["files"]] == [
        i.hash for i in hf_xet.hash_files([str(p) for p in paths])
    ]
    assert [f["size"] for f in out["files"]] == [len(d) for d in datas]
    assert [f["sha256"] for f in out["files"]] == [hashlib.sha256(d).hexdigest() for d in datas]
    assert set(out["metrics"]) == {
        "total_bytes", "new_bytes", "deduped_bytes", "deduped_bytes_global", "bytes_resumed",
        "xorb_bytes_uploaded", "shard_bytes_uploaded",
    }  # fmt: skip
    assert out["metrics"]["xorb_bytes_uploaded"] == server.stats()["xorb_bytes_received"] > 0
    assert len(done.stdout.strip().splitlines()) == 1

    token, exp = server.token("write")
    again = cli("--endpoint", server.url, "--token", token, "--token-exp", str(exp), str(paths[0]))
    assert again.returncode == 0, again.stderr
    metrics = json.loads(again.stdout)["metrics"]
    assert metrics["xorb_bytes_uploaded"] == 0
    assert metrics["deduped_bytes_global"] == len(datas[0])


def test_cli_errors_are_one_line(cas_server_factory, tmp_path: Path) -> None:
    server = cas_server_factory()
    path = tmp_path / "f"
    path.write_bytes(b"data")
    bad_token = cli("--endpoint", server.url, "--token", "xcas1.e30.bad", str(path))
    assert bad_token.returncode == 1
    lines = bad_token.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0] and lines[0].startswith("xet-pyodide upload")
    missing = cli("--endpoint", server.url, "--token", "t", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "nope" in missing.stderr
    usage = cli("--endpoint", server.url, str(path))  # no credentials at all
    assert usage.returncode == 2
