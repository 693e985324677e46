"""Upload resume (xet_pyodide/session/resume.py) against the real local CAS server.

An upload is interrupted after its xorbs were acknowledged (the server refuses the shard, or
the CLI is killed with SIGKILL); the next upload of the same file on the same endpoint, with
the same resume directory, sends only what was not acknowledged. Broken, stale and foreign
state each give a clean, complete upload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cpython._cli_helpers import REPO
from tests.portable.upload_checks import make_data
from xet_pyodide import SessionConfig, XetSession
from xet_pyodide.errors import XetResumeStaleError, XetServerError
from xet_pyodide.session.resume import acknowledged_bytes, journal_name, parse_journal

MIB = 1 << 20
SMALL_XORBS = SessionConfig(max_xorb_bytes=2 * MIB, global_dedup=False)


def _session(
    server: Any, resume: Any, config: SessionConfig = SMALL_XORBS, **kw: Any
) -> XetSession:
    return XetSession(server.url, server.token("write"), config=config, resume=resume, **kw)


async def _upload(server: Any, data: bytes, resume: Any, **kw: Any) -> Any:
    async with _session(server, resume, **kw) as session:
        await session.upload_bytes(data, name="f.bin")
        result = await session.finalize()
        assert await session.download_bytes(result.files[0].hash, len(data)) == data
    return result


async def _interrupted(server: Any, data: bytes, resume: Any) -> None:
    """Upload ``data``: every xorb is acknowledged, then the shard is refused."""
    server.set_faults(endpoints={"shard_v2": {"error_rate": 1.0, "status": 400}})
    try:
        async with _session(server, resume) as session:
            await session.upload_bytes(data, name="f.bin")
            with pytest.raises(XetServerError):
                await session.finalize()
    finally:
        server.set_faults()


def _journal(server: Any, resume_dir: Path, scope: str = "") -> Path:
    return resume_dir / f"{journal_name(server.url, scope)}.xrs"


def _journal_xorbs(server: Any, resume_dir: Path) -> list[Any]:
    path = _journal(server, resume_dir)
    if not path.exists():
        return []
    parsed = parse_journal(path.read_bytes(), server.url, "")
    return [r.xorb for r in parsed.records]


def test_interrupted_upload_resumes(cas_server_factory, tmp_path: Path) -> None:
    server = cas_server_factory()
    data = make_data("random", 12 * MIB + 12345, 23)
    asyncio.run(_interrupted(server, data, tmp_path))
    recorded = _journal_xorbs(server, tmp_path)
    assert len(recorded) >= 6
    assert sum(x.num_bytes for x in recorded) == len(data)  # every chunk is in a stored xorb
    assert server.stats()["store"]["files"] == 0

    server.reset_stats()
    events: list[dict[str, Any]] = []
    result = asyncio.run(_upload(server, data, tmp_path, progress=events.append))
    m = result.metrics
    assert m.xorb_bytes_uploaded == 0 == server.stats().get("xorb_bytes_received", 0)
    assert m.bytes_resumed == len(data) == m.deduped_bytes and m.new_bytes == 0
    assert m.resumed_xorbs == len(recorded) and m.resume_missing_xorbs == 0
    assert events[-1]["bytes_resumed"] == len(data)
    assert server.stats()["store"]["files"] == 1
    # Registered now: the journal forgot those xorbs (the file is gone).
    assert not _journal(server, tmp_path).exists()


def test_partial_resume_sends_the_rest(cas_server_factory, tmp_path: Path) -> None:
    """A journal holding some of the xorbs: those chunks are not sent, the others are."""
    server = cas_server_factory()
    data = make_data("random", 12 * MIB, 5)
    asyncio.run(_interrupted(server, data, tmp_path))
    path = _journal(server, tmp_path)
    parsed = parse_journal(path.read_bytes(), server.url, "")
    keep = parsed.records[: len(parsed.records) // 2]
    header_len = 8 + int.from_bytes(path.read_bytes()[:4], "little")
    path.write_bytes(path.read_bytes()[:header_len] + b"".join(r.frame for r in keep))
    kept_bytes = sum(r.xorb.num_bytes for r in keep)
    result = asyncio.run(_upload(server, data, tmp_path))
    assert result.metrics.bytes_resumed == kept_bytes > 0
    assert result.metrics.new_bytes == len(data) - kept_bytes


def test_corrupted_state_is_discarded_with_a_warning(
    cas_server_factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = cas_server_factory()
    data = make_data("random", 6 * MIB, 7)
    asyncio.run(_interrupted(server, data, tmp_path))
    path = _journal(server, tmp_path)
    good = path.read_bytes()
    # 1. a torn last frame: the frames before it are used, the tail is dropped
    path.write_bytes(good[:-10])
    with caplog.at_level(logging.WARNING, logger="xet_pyodide.resume"):
        result = asyncio.run(_upload(server, data, tmp_path))
    assert "torn" in caplog.text or "bad frame length" in caplog.text
    assert 0 < result.metrics.bytes_resumed < len(data)
    assert result.files[0].size == len(data)
    # 2. garbage: nothing is resumed, nothing breaks; the bad journal is replaced
    server2 = cas_server_factory()
    asyncio.run(_interrupted(server2, data, tmp_path))
    path2 = _journal(server2, tmp_path)
    raw = bytearray(path2.read_bytes())
    raw[3] ^= 0xFF  # header length
    path2.write_bytes(bytes(raw))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xet_pyodide.resume"):
        result = asyncio.run(_upload(server2, data, tmp_path))
    assert "upload resume state" in caplog.text
    assert result.metrics.bytes_resumed == 0 and result.metrics.new_bytes == len(data)
    assert not path2.exists()  # rewritten empty, then nothing left to keep
    # 3. a flipped byte inside a record: its checksum fails, earlier records still count
    server3 = cas_server_factory()
    asyncio.run(_interrupted(server3, data, tmp_path))
    path3 = _journal(server3, tmp_path)
    raw = bytearray(path3.read_bytes())
    raw[-5] ^= 0x01
    path3.write_bytes(bytes(raw))
    result = asyncio.run(_upload(server3, data, tmp_path))
    assert 0 < result.metrics.bytes_resumed < len(data)


def test_state_naming_a_lost_xorb(cas_server_factory, tmp_path: Path) -> None:
    """The server collected the orphan xorbs (grace period over): the existence check
    finds them missing, the upload sends everything again and registers a good file."""
    server = cas_server_factory()
    data = make_data("random", 6 * MIB, 8)
    asyncio.run(_interrupted(server, data, tmp_path))
    recorded = _journal_xorbs(server, tmp_path)
    lost = server.gc(grace=0)
    assert lost == len(recorded) and server.stats()["store"]["xorbs"] == 0
    result = asyncio.run(_upload(server, data, tmp_path))
    m = result.metrics
    assert m.resume_missing_xorbs == len(recorded) and m.bytes_resumed == 0
    assert m.new_bytes == len(data) and m.xorb_bytes_uploaded > len(data) // 2
    assert not _journal(server, tmp_path).exists()


def test_lost_xorb_without_check_is_refused_then_clean(cas_server_factory, tmp_path: Path) -> None:
    """With the existence check off, the server's refusal of the shard is the signal: the
    session raises XetResumeStaleError, drops the xorbs from the state, registers nothing;
    the next upload is complete."""
    server = cas_server_factory()
    data = make_data("random", 6 * MIB, 9)
    asyncio.run(_interrupted(server, data, tmp_path))
    server.gc(grace=0)
    trusting = SessionConfig(max_xorb_bytes=2 * MIB, global_dedup=False, resume_verify=False)

    async def attempt() -> None:
        async with _session(server, tmp_path, trusting) as session:
            await session.upload_bytes(data, name="f.bin")
            with pytest.raises(XetResumeStaleError) as info:
                await session.finalize()
            assert info.value.xorbs

    asyncio.run(attempt())
    assert server.stats()["store"]["files"] == 0
    assert not _journal(server, tmp_path).exists()
    result = asyncio.run(_upload(server, data, tmp_path, config=trusting))
    assert result.metrics.new_bytes == len(data) and result.metrics.bytes_resumed == 0


def test_state_of_another_endpoint_is_not_used(cas_server_factory, tmp_path: Path) -> None:
    server_a = cas_server_factory()
    server_b = cas_server_factory()
    data = make_data("random", 6 * MIB, 10)
    asyncio.run(_interrupted(server_a, data, tmp_path))
    # Same directory, other endpoint: another journal, nothing resumed.
    result = asyncio.run(_upload(server_b, data, tmp_path))
    assert result.metrics.bytes_resumed == 0 and result.metrics.new_bytes == len(data)
    # Even A's journal put under B's name is refused (its header names A).
    _journal(server_a, tmp_path).rename(_journal(server_b, tmp_path))
    server_b2_data = make_data("random", 6 * MIB, 11)
    result = asyncio.run(_upload(server_b, server_b2_data, tmp_path))
    assert result.metrics.bytes_resumed == 0
    # And a scope keeps two repositories of one endpoint apart.
    asyncio.run(_interrupted(server_a, data, tmp_path))
    result = asyncio.run(_upload(server_a, data, tmp_path, resume_scope="other/repo"))
    assert result.metrics.bytes_resumed == 0


def test_resume_off_writes_nothing(cas_server_factory, tmp_path: Path) -> None:
    server = cas_server_factory()
    data = make_data("random", 3 * MIB, 12)
    asyncio.run(_upload(server, data, False))
    asyncio.run(_interrupted(server, data, False))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- CLI, SIGKILL


def _acknowledged_bytes(path: Path, endpoint: str, scope: str) -> int:
    return acknowledged_bytes(path.read_bytes() if path.exists() else None, endpoint, scope)


def test_cli_killed_mid_upload_resumes(cas_server_factory, tmp_path: Path) -> None:
    import hf_xet

    size = 256 * MIB
    path = tmp_path / "big.bin"
    with path.open("wb") as f:
        for i in range(size // (16 * MIB)):
            f.write(make_data("random", 16 * MIB, 100 + i))
    server = cas_server_factory()
    resume_dir = tmp_path / "resume"
    token_url = server.token_url("write")
    ((name, value),) = server.token_headers.items()
    args = [
        sys.executable, "-m", "xet_pyodide", "upload", "--token-url", token_url,
        "--token-header", f"{name}: {value}", "--resume-dir", str(resume_dir), str(path),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    journal = resume_dir / f"{journal_name(server.url, token_url)}.xrs"

    # The first run's shard waits at the server, so the run cannot finish before it is killed:
    # its four xorbs upload concurrently and their last acknowledgements can land within a
    # poll of each other (under load the whole upload once completed between two polls).
    server.set_faults(endpoints={"shard_v2": {"latency_ms": 120_000, "max_faults": 1}})
    started = time.monotonic()
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        while _acknowledged_bytes(journal, server.url, token_url) < 0.6 * size:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() - started < 600
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    first_seconds = time.monotonic() - started
    acknowledged = _acknowledged_bytes(journal, server.url, token_url)
    sent_first = server.stats()["xorb_bytes_received"]
    assert server.stats()["store"]["files"] == 0

    server.set_faults()
    server.reset_stats()
    started = time.monotonic()
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    second_seconds = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    sent = server.stats()["xorb_bytes_received"]
    print(
        f"\nresume CLI 256 MiB: killed at {acknowledged / size:.0%} acknowledged "
        f"({sent_first / MIB:.1f} MiB sent, {first_seconds:.1f} s); rerun sent {sent / MIB:.1f} "
        f"MiB in {second_seconds:.1f} s, resumed {out['metrics']['bytes_resumed'] / MIB:.1f} MiB"
    )
    assert out["metrics"]["xorb_bytes_uploaded"] == sent
    assert sent <= 0.4 * size + 64 * MIB
    assert out["metrics"]["bytes_resumed"] >= acknowledged * 0.99
    (info,) = hf_xet.hash_files([str(path)])
    assert out["files"][0]["hash"] == info.hash
    assert not journal.exists()  # registered: nothing left to resume

    # hf_xet downloads it byte-identical (and our own verified download agrees).
    dest = tmp_path / "hf.bin"
    server.hf_download(
        [{"hash": info.hash, "size": size, "dest": str(dest)}], hf_home=tmp_path / "hf"
    )
    assert dest.read_bytes() == path.read_bytes()

    async def ours() -> bytes:
        async with XetSession(server.url, server.token("read"), resume=False) as session:
            return await session.download_bytes(info.hash, size)

    assert asyncio.run(ours()) == path.read_bytes()


def test_cli_reuploads_when_the_shard_names_a_lost_xorb(cas_server_factory, tmp_path: Path) -> None:
    """The server loses the resumed xorbs after answering the existence check (collected
    while the shard is on its way): the shard is refused, the CLI drops them from the state and
    uploads once more by itself; the file is registered complete."""
    server = cas_server_factory()
    data = make_data("random", 6 * MIB, 13)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    resume_dir = tmp_path / "resume"
    token, exp = server.token("write")
    args = [
        sys.executable, "-m", "xet_pyodide", "upload", "--endpoint", server.url, "--token",
        token, "--token-exp", str(exp), "--resume-dir", str(resume_dir), str(path),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server.set_faults(endpoints={"shard_v2": {"error_rate": 1.0, "status": 400}})
    first = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1 and "shard upload" in first.stderr
    assert _journal_xorbs(server, resume_dir)

    # The shard of the next run waits 3 s at the server; the xorbs are collected meanwhile,
    # right after the client's existence check saw them.
    server.set_faults(endpoints={"shard_v2": {"latency_ms": 3000, "max_faults": 1}})
    server.reset_stats()
    second = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not server.stats()["requests"].get("xorb_head"):
            assert second.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        assert server.gc(grace=0) >= 1
        stdout, stderr = second.communicate(timeout=300)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    assert second.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["metrics"]["bytes_resumed"] == 0 and out["metrics"]["new_bytes"] == len(data)
    statuses = server.stats()["statuses"]
    assert sum(n for s, n in statuses["shard_v2"].items()) == 2  # refused, then accepted
    assert not _journal(server, resume_dir).exists()

    async def download() -> bytes:
        async with XetSession(server.url, server.token("read"), resume=False) as session:
            return await session.download_bytes(out["files"][0]["hash"], len(data))

    assert asyncio.run(download()) == data
