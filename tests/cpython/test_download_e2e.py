"""Downloads against the real local CAS server under injected faults (expired signed URLs,
5xx/429 on xorb GETs, 416), and ``python -m xet_pyodide download`` (real subprocess)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cpython._cli_helpers import run_cli
from tests.plugins.download_corpus import Corpus, run_async


async def _download(corpus: Corpus, name: str, **kw: Any) -> tuple[bytes, dict[str, Any]]:
    from xet_pyodide import XetSession
    from xet_pyodide.io import RetryPolicy

    f = corpus.files[name]
    retry = RetryPolicy(base_delay=0.01, max_delay=0.05)
    async with XetSession(
        corpus.server.url, corpus.read_token(), retry=retry, chunk_cache=False
    ) as session:
        data = await session.download_bytes(f["hash"], f["size"], **kw)
        assert session.last_download is not None
        return data, session.last_download.to_dict()


def test_expired_signed_urls_are_refreshed(corpus: Corpus) -> None:
    server = corpus.server
    server.set_faults(endpoints={"reconstruction_v2": {"expire_rate": 1.0, "max_faults": 1}})
    server.reset_stats()
    try:
        data, stats = run_async(_download(corpus, "dedup"))
    finally:
        server.set_faults()
    assert data == corpus.data["dedup"]
    assert stats["url_refreshes"] == 1 and stats["verified"] == "file"
    after = server.stats()
    assert after["requests"]["reconstruction_v2"] == 2
    assert "403" in after["statuses"]["xorb_fetch"]


def test_xorb_fetch_5xx_and_429_are_retried(corpus: Corpus) -> None:
    server = corpus.server
    for status in (503, 429):
        server.set_faults(
            endpoints={"xorb_fetch": {"error_rate": 1.0, "status": status, "max_faults": 2}}
        )
        server.reset_stats()
        try:
            data, _ = run_async(_download(corpus, "random", byte_range=(10, 2_000_000)))
        finally:
            server.set_faults()
        assert data == corpus.data["random"][10:2_000_001]
        assert server.stats()["statuses"]["xorb_fetch"][str(status)] == 2


def test_range_past_the_end_is_416(corpus: Corpus) -> None:
    from xet_pyodide.errors import XetRangeError

    f = corpus.files["text"]
    wrong = {**f, "size": f["size"] + 100}  # the caller believes the file is longer
    corpus.files["text-wrong"] = wrong
    try:
        with pytest.raises(XetRangeError):
            run_async(_download(corpus, "text-wrong", byte_range=(f["size"], f["size"] + 50)))
    finally:
        del corpus.files["text-wrong"]
    assert corpus.server.stats()["statuses"]["reconstruction_v2"].get("416", 0) >= 1


@pytest.mark.parametrize(("name", "size"), [("text", 50_000), ("random", 1_000_000)])
def test_full_download_with_too_small_a_size_is_refused(
    corpus: Corpus, name: str, size: int
) -> None:
    """A size smaller than the file's: the chunks run past it. Without the check a file
    whose first chunk covers that size (``text``) hashed right and came back cut short."""
    wrong = {**corpus.files[name], "size": size}
    corpus.files["wrong"] = wrong
    try:
        with pytest.raises(ValueError, match=r"larger than the size given .*pass its real size"):
            run_async(_download(corpus, "wrong"))
    finally:
        del corpus.files["wrong"]


def test_full_download_with_too_large_a_size_is_refused(corpus: Corpus) -> None:
    from xet_pyodide.errors import XetProtocolError

    wrong = {**corpus.files["text"], "size": 70_001}
    corpus.files["wrong"] = wrong
    try:
        with pytest.raises(XetProtocolError, match="70000 bytes, 70001 were requested"):
            run_async(_download(corpus, "wrong"))
    finally:
        del corpus.files["wrong"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("download", *args)


def test_cli_download(corpus: Corpus, tmp_path: Path) -> None:
    server = corpus.server
    f = corpus.files["dedup"]
    data = corpus.data["dedup"]
    ((name, value),) = server.token_headers.items()
    out = tmp_path / "out.bin"
    cache = tmp_path / "cache"
    token_args = ["--token-url", server.token_url("read"), "--token-header", f"{name}: {value}"]
    server.reset_stats()
    done = cli(*token_args, "--cache-dir", str(cache), f["hash"], str(f["size"]), str(out))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert out.read_bytes() == data
    assert result["verified"] == "file" and result["bytes_written"] == len(data)
    assert result["bytes_fetched"] == server.stats()["xorb_bytes_served"] > 0
    # Again with the same cache directory: not one xorb byte is fetched.
    server.reset_stats()
    again = cli(*token_args, "--cache-dir", str(cache), f["hash"], str(f["size"]), str(out))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["bytes_fetched"] == 0
    assert server.stats()["requests"].get("xorb_fetch", 0) == 0
    # A range, with a plain token.
    token, exp = server.token("read")
    part = tmp_path / "part.bin"
    ranged = cli("--endpoint", server.url, "--token", token, "--token-exp", str(exp),
                 f["hash"], str(f["size"]), str(part), "--range", "1000-2500000")  # fmt: skip
    assert ranged.returncode == 0, ranged.stderr
    assert part.read_bytes() == data[1000:2_500_001]
    assert json.loads(ranged.stdout)["range"] == [1000, 2_500_000]
    # Errors: one line on stderr, exit 1; bad arguments exit 2.
    wrong = cli("--endpoint", server.url, "--token", token, "ab" * 32, "5", str(tmp_path / "x"))
    assert wrong.returncode == 1
    lines = wrong.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xet-pyodide download: error:")
    assert "HTTP 404" in lines[0]
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.xet-part").exists()
    bad = cli("--endpoint", server.url, "--token", token, f["hash"], "5", "o", "--range", "9-1")
    assert bad.returncode == 2
    # A wrong size or endpoint: one line too, and nothing written
    for args in (
        ["--endpoint", server.url, "--token", token, f["hash"], "1000000"],
        ["--endpoint", "127.0.0.1:8080", "--token", token, f["hash"], str(f["size"])],
    ):
        refused = cli(*args, str(tmp_path / "y"))
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 1 and len(lines) == 1, refused.stderr
        assert "pass its real size" in lines[0] or "absolute http(s) URL" in lines[0], lines
        assert not (tmp_path / "y").exists() and not (tmp_path / "y.xet-part").exists()
