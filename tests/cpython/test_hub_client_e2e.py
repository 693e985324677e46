"""``xet_pyodide.hub.HubClient`` (CPython) and ``python -m xet_pyodide hub`` against the local
Hub, with the unmodified real clients on the other side: huggingface_hub 2.4.0 (+ hf_xet) reads
what we commit, we read what it and @huggingface/hub commit. The browser's ``xet.hub`` is in
``tests/browser/test_hub_client_browser.py``; the same Python code under Pyodide in
``test_hub_client_portable.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hf_xet
import pytest

from tests.cpython._hub_helpers import (
    assert_ok,
    binary,
    hub_client,
    mint_token,
    offline_env,
    run_node_client,
    run_python_client,
    sha,
    three_files,
    unique,
    write_tree,
)
from tests.plugins.cas_server import REPO, CasServer, child_pythonpath
from xet_pyodide.errors import (
    XetAuthError,
    XetHubAuthError,
    XetHubConflictError,
    XetHubError,
    XetHubNotFoundError,
    XetNotFoundError,
)
from xet_pyodide.hub import HubClient
from xet_pyodide.io.retry import RetryPolicy
from xet_pyodide.session import SessionConfig

MIB = 1 << 20


async def _no_sleep(_seconds: float) -> None:
    return None


FAST_RETRY = RetryPolicy(max_attempts=3, sleep=_no_sleep)


def head(server: CasServer, repo: str) -> str:
    with hub_client(server, server.dev_secret) as c:
        r = c.get(f"/api/models/{repo}/revision/main")
    assert r.status_code == 200, r.text
    return r.json()["sha"]


def requests_to(server: CasServer, endpoint: str) -> int:
    return int(server.stats()["requests"].get(endpoint, 0))


async def test_upload_then_huggingface_hub_reads_and_we_read_theirs(
    cas_server: CasServer, tmp_path: Path
) -> None:
    server = cas_server
    token = mint_token(server, "ivan")
    ours, theirs = f"ivan/{unique('ours')}", f"ivan/{unique('theirs')}"
    files = three_files(600)
    events: list[dict[str, Any]] = []
    async with HubClient(server.url, token) as hub:
        made = await hub.create_repo(ours)
        assert made == {"repoUrl": f"{server.url}/{ours}", "id": ours}
        result = await hub.upload_files(
            ours, list(files.items()), commit_title="three files", progress=events.append
        )
        listed = [e async for e in hub.list_files(ours, recursive=True)]

    assert result.committed and result.commit_oid == head(server, ours)
    assert result.commit_url == f"{server.url}/{ours}/commit/{result.commit_oid}"
    root = write_tree(tmp_path / "ref", files)
    refs = hf_xet.hash_files([str(root / "w" / n) for n in ("a.bin", "b.bin")])
    by_name = {"a.bin": refs[0].hash, "b.bin": refs[1].hash}
    assert [(f.path, f.mode, f.uploaded, f.sha256, f.xet_hash) for f in result.files] == [
        ("README.md", "regular", True, sha(files["README.md"]), None),
        ("w/a.bin", "lfs", True, sha(files["w/a.bin"]), by_name["a.bin"]),
        ("w/b.bin", "lfs", True, sha(files["w/b.bin"]), by_name["b.bin"]),
    ]
    assert result.metrics is not None and result.metrics.deduped_bytes >= 2 * MIB
    phases = list(dict.fromkeys(e["phase"] for e in events))
    assert phases[0] == "preuploading" and phases[-2:] == ["committing", "done"]
    total = sum(map(len, files.values()))
    assert events[-1]["bytes_processed"] == events[-1]["bytes_total"] == total
    assert {e["path"] for e in listed} == {*files, "w"}

    # huggingface_hub (hf_hub_download, snapshot_download) reads our commit byte-identical,
    # and commits its own, which we read back verified, with @huggingface/hub's
    theirs_files = {"n.md": b"# theirs\n", "d/x.bin": binary(2 * MIB + 1, 601)}
    write_tree(tmp_path / "theirs", theirs_files)
    got = assert_ok(run_python_client(server, [
        *({"op": "hf_hub_download", "repo_id": ours, "filename": p} for p in files),
        {"op": "snapshot_download", "repo_id": ours},
        {"op": "create_repo", "repo_id": theirs},
        {"op": "upload_folder", "repo_id": theirs, "folder": str(tmp_path / "theirs")},
    ], tmp_path / "hf-home", token))  # fmt: skip
    assert got[:3] == [{"sha256": sha(d), "size": len(d)} for d in files.values()]
    assert got[3] == {p: sha(d) for p, d in files.items()}
    js_file = binary(MIB + 7, 602)
    (tmp_path / "js.bin").write_bytes(js_file)
    assert_ok(run_node_client(server, [
        {"op": "uploadFiles", "repo": theirs, "files": [[str(tmp_path / "js.bin"), "js.bin"]]},
    ], token))  # fmt: skip
    async with HubClient(server.url, token) as hub:
        for path, data in {**theirs_files, "js.bin": js_file}.items():
            assert await hub.download_file(theirs, path) == data
        out = tmp_path / "x.bin"
        stats = await hub.download_to_file(theirs, "d/x.bin", out)
        assert out.read_bytes() == theirs_files["d/x.bin"] and stats.verified == "file"
        blocks = [b async for b in hub.download_stream(theirs, "d/x.bin", block_size=MIB)]
        assert [len(b) for b in blocks] == [MIB, MIB, 1]
        x = theirs_files["d/x.bin"]
        part = await hub.download_file(theirs, "d/x.bin", byte_range=(MIB - 3, MIB + 3))
        assert part == x[MIB - 3 : MIB + 4]
        assert await hub.download_file(theirs, "n.md", byte_range=(2, 4)) == b"the"
        # a repeat download comes from the client's chunk cache: no xorb bytes fetched
        fetched = server.stats()["xorb_bytes_served"]
        assert await hub.download_file(theirs, "js.bin") == js_file
        assert server.stats()["xorb_bytes_served"] == fetched


async def test_unchanged_files_are_skipped(cas_server: CasServer) -> None:
    server = cas_server
    token = mint_token(server, "ivan")
    repo = f"ivan/{unique('same')}"
    files = three_files(610)
    async with HubClient(server.url, token) as hub:
        await hub.create_repo(repo)
        first = await hub.upload_files(repo, list(files.items()))
        before = server.stats()
        again = await hub.upload_files(repo, list(files.items()))
        after = server.stats()
        changed = {**files, "w/b.bin": files["w/b.bin"][:-1] + b"!"}
        third = await hub.upload_files(repo, list(changed.items()))
    assert again.commit_oid == first.commit_oid and not again.committed
    assert [f.mode for f in again.files] == ["unchanged"] * 3
    assert [f.sha256 for f in again.files] == [sha(d) for d in files.values()]
    for endpoint in ("hub_commit", "token", "xorb_grant", "xorb_upload", "shard_v1", "shard_v2"):
        assert after["requests"].get(endpoint) == before["requests"].get(endpoint), endpoint
    assert third.committed and [f.mode for f in third.files] == ["unchanged", "unchanged", "lfs"]
    assert third.metrics is not None and third.metrics.new_bytes < 200_000  # dedup


async def test_a_changed_file_sends_only_its_changes(cas_server_factory: Any) -> None:
    """A client remembers where its uploads' chunks went (UploadMemory): committing the file
    again with 10 % changed sends about that 10 %, even from a server without global dedup
    (which otherwise finds existing xorbs only through sampled chunks); a new client, which
    remembers nothing, sends every xorb it packs differently (a xorb the server already has
    costs nothing: its grant request says so)."""
    server = cas_server_factory(disable=["dedup"])
    token = mint_token(server, "ivan")
    repo = f"ivan/{unique('memory')}"
    config = SessionConfig(max_xorb_bytes=1 << 20)
    original = binary(8 * MIB, 615)
    changed = original[: 4 * MIB] + binary(800 << 10, 616) + original[4 * MIB + (800 << 10) :]
    again = changed[: 6 * MIB] + binary(800 << 10, 617) + changed[6 * MIB + (800 << 10) :]

    def received() -> int:
        return int(server.stats()["xorb_bytes_received"])

    async with HubClient(server.url, token, config=config) as hub:
        await hub.create_repo(repo)
        await hub.upload_files(repo, [("w.bin", original)])
        before = received()
        second = await hub.upload_files(repo, [("w.bin", changed)])
        remembered = received() - before
    async with HubClient(server.url, token, config=config) as fresh:
        before = received()
        third = await fresh.upload_files(repo, [("w.bin", again)])
        forgotten = received() - before
    assert second.committed and third.committed
    assert second.metrics is not None and second.metrics.deduped_bytes > 7 * MIB
    assert remembered < (800 << 10) + 300_000, remembered  # the change and its chunk borders
    assert forgotten > 3 * remembered, (forgotten, remembered)
    async with HubClient(server.url, token) as hub:
        assert await hub.download_file(repo, "w.bin") == again


async def test_stale_parent_commit_is_a_conflict(cas_server: CasServer) -> None:
    server = cas_server
    token = mint_token(server, "ivan")
    repo = f"ivan/{unique('stale')}"
    async with HubClient(server.url, token) as hub:
        await hub.create_repo(repo)
        first = head(server, repo)
        await hub.upload_files(repo, [("a.txt", b"a\n")], parent_commit=first)
        second = head(server, repo)
        with pytest.raises(XetHubConflictError) as info:
            await hub.upload_files(repo, [("b.bin", binary(MIB, 620))], parent_commit=first)
        assert info.value.status == 409 and second in (info.value.server_message or "")
        assert head(server, repo) == second
        retried = await hub.upload_files(repo, [("b.bin", binary(MIB, 620))], parent_commit=second)
        assert retried.committed and head(server, repo) == retried.commit_oid


async def test_cancelled_upload_leaves_the_branch_unchanged(cas_server_factory: Any) -> None:
    slow = {"latency_ms": 400}
    server = cas_server_factory(faults={"endpoints": {"xorb_grant": slow, "xorb_upload": slow}})
    token = mint_token(server, "ivan")
    repo = f"ivan/{unique('cancel')}"
    async with HubClient(server.url, token) as hub:
        await hub.create_repo(repo)
        first = head(server, repo)
        reached = asyncio.Event()

        def progress(event: dict[str, Any]) -> None:
            if event["phase"] == "uploading_xorbs":
                reached.set()

        files = [("a.txt", b"inline\n"), ("big.bin", binary(6 * MIB, 630))]
        task = asyncio.ensure_future(hub.upload_files(repo, files, progress=progress))
        await asyncio.wait_for(reached.wait(), 120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert head(server, repo) == first
    assert requests_to(server, "hub_commit") == 0
    assert requests_to(server, "shard_v1") + requests_to(server, "shard_v2") == 0


async def test_rejected_xet_token_is_refreshed_from_the_hub(cas_server_factory: Any) -> None:
    """The CAS rejects the first xorb upload's token (401, as for one that expired, a second
    after it was issued: tokens of one second are identical): the session fetches a new one
    from the repository's token endpoint and goes on."""
    rejected = {"error_rate": 1.0, "status": 401, "max_faults": 1, "latency_ms": 1100}
    server = cas_server_factory(
        faults={"endpoints": {"xorb_grant": rejected, "xorb_upload": rejected}}
    )
    token = mint_token(server, "ivan")
    repo = f"ivan/{unique('refresh')}"
    data = binary(2 * MIB, 640)
    async with HubClient(server.url, token, retry=FAST_RETRY) as hub:
        await hub.create_repo(repo)
        result = await hub.upload_files(repo, [("w.bin", data)])
        assert await hub.download_file(repo, "w.bin") == data
    assert result.committed
    log = server.request_log()
    token_calls = [e for e in log if e["path"] == f"/api/models/{repo}/xet-write-token/main"]
    assert len(token_calls) == 2, token_calls  # the first token, then the refresh after the 401
    assert any(e["status"] == 401 for e in log if e["endpoint"] in ("xorb_grant", "xorb_upload"))


async def test_hub_errors_are_typed(cas_server: CasServer) -> None:
    server = cas_server
    owner, other = mint_token(server, "ivan"), mint_token(server, "judy")
    reader = mint_token(server, "ivan", role="read")
    repo = f"ivan/{unique('private')}"
    async with HubClient(server.url, owner) as hub:
        await hub.create_repo(repo, private=True)
        await hub.upload_files(repo, [("f.txt", b"x\n")])
        with pytest.raises(XetHubConflictError):
            await hub.create_repo(repo)
        assert (await hub.create_repo(repo, exist_ok=True))["id"] == repo
        with pytest.raises(XetHubNotFoundError) as missing:
            await hub.download_file(repo, "nope.bin")
        assert missing.value.error_code == "EntryNotFound" and missing.value.status == 404
    async with HubClient(server.url, other) as hub:
        with pytest.raises(XetHubNotFoundError) as hidden:
            await hub.download_file(repo, "f.txt")
        assert hidden.value.error_code == "RepoNotFound"
        assert isinstance(hidden.value, XetNotFoundError)
    async with HubClient(server.url, reader) as hub:
        with pytest.raises(XetHubAuthError) as refused:
            await hub.upload_files(repo, [("g.txt", b"y\n")])
        assert refused.value.status == 403 and isinstance(refused.value, XetAuthError)
        assert await hub.download_file(repo, "f.txt") == b"x\n"
    async with HubClient(server.url, "hf_not_a_token") as hub:
        with pytest.raises(XetHubError) as bad:
            await hub.list_files(repo).__anext__()
        assert bad.value.status == 401
    assert head(server, repo)  # the failed upload committed nothing


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xet_pyodide", *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
        env=offline_env({"PYTHONPATH": child_pythonpath(), **env}),
    )  # fmt: skip


def test_cli_hub_upload_and_download_honour_hf_endpoint_and_token(
    cas_server: CasServer, tmp_path: Path
) -> None:
    server = cas_server
    token = mint_token(server, "kim")
    repo = f"kim/{unique('cli')}"
    folder = write_tree(tmp_path / "folder", {"a.txt": b"a\n", "sub/b.bin": binary(MIB, 650)})
    single = tmp_path / "c.bin"
    single.write_bytes(binary(50_000, 651))
    env = {"HF_ENDPOINT": server.url, "HF_TOKEN": token}

    up = run_cli(["hub", "upload", repo, str(folder), str(single), "-m", "from the cli",
                  "--create"], env)  # fmt: skip
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["committed"] and result["commit_oid"] == head(server, repo)
    assert {f["path"]: f["mode"] for f in result["files"]} == {
        "a.txt": "regular", "sub/b.bin": "lfs", "c.bin": "lfs"}  # fmt: skip
    with hub_client(server, token) as c:
        commits = c.get(f"/api/models/{repo}/commits/main").json()
    assert commits[0]["title"] == "from the cli"

    out = tmp_path / "b.out"
    down = run_cli(["hub", "download", repo, "sub/b.bin", str(out)], env)
    assert down.returncode == 0, down.stderr
    stats = json.loads(down.stdout)
    assert out.read_bytes() == (folder / "sub" / "b.bin").read_bytes()
    assert stats["verified"] == "file" and stats["commit"] == result["commit_oid"]

    # explicit options win over the environment; errors are one line, exit 1
    bad = run_cli(["hub", "download", repo, "nope", str(tmp_path / "n"),
                   "--hub-url", server.url, "--token", token], {})  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "XetHub" not in bad.stderr and "404" in bad.stderr
    assert not os.path.exists(tmp_path / "n")
    anonymous = run_cli(["hub", "upload", repo, str(single)], {"HF_ENDPOINT": server.url})
    assert anonymous.returncode == 1 and "401" in anonymous.stderr
