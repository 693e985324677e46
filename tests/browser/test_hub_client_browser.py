"""``xet.hub`` (our Hub client in the JS front door) in headless Chromium against the local Hub.

The page (``web/index.html`` on ``http://127.0.0.1:PORT``) talks to the Hub as
``http://localhost:PORT``: another origin, as a real site talks to huggingface.co. (The URLs
the server hands out — repository and commit URLs, Xet's ``casUrl`` — are its public URL,
``http://127.0.0.1:PORT``, whatever ``Host`` a request carried.) The unmodified
real clients check what the page committed — huggingface_hub ``hf_hub_download`` /
``snapshot_download`` (CPython) and @huggingface/hub ``downloadFile`` (Node) — and commit files
the page then downloads, verified. Then the failure paths: a token expiring mid-upload is
refreshed, a stale ``parentCommit`` is a conflict, an aborted upload leaves the branch alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hf_xet
import httpx
import pytest

from tests.browser.conftest import DemoPage, requires_browser, write_files
from tests.cpython._hub_helpers import (
    assert_ok,
    binary,
    mint_token,
    run_node_client,
    run_python_client,
    sha,
    three_files,
    unique,
    write_tree,
)

pytestmark = requires_browser

MIB = 1 << 20

# Commits fixtures through xet.hub.uploadFiles; returns the result (or the error's fields),
# the phases seen in order and the last progress event.
UPLOAD_JS = """
async ({hubUrl, token, repo, files, options, abortAt}) => {
  const events = [];
  const controller = new AbortController();
  const list = await Promise.all(files.map(async ([fixture, path]) =>
    ({path, content: await window.fixture(fixture)})));
  const onProgress = (e) => {
    events.push(e);
    if (abortAt && e.phase === abortAt && !controller.signal.aborted) controller.abort();
  };
  const phases = () => events.map((e) => e.phase).filter((p, i, a) => a.indexOf(p) === i);
  try {
    const result = await window.demo.xet.hub.uploadFiles({
      hubUrl, accessToken: token, repo, files: list, onProgress, signal: controller.signal,
      ...options});
    return {result, phases: phases(), last: events[events.length - 1]};
  } catch (e) {
    return {error: {name: e.name, status: e.status, errorCode: e.errorCode,
                    serverMessage: e.serverMessage, message: e.message}, phases: phases()};
  }
}
"""

# Downloads files through xet.hub (Blob, or stream with `stream`): SHA-256 and size of each,
# null for a missing file.
DOWNLOAD_JS = """
async ({hubUrl, token, repo, paths, stream, range}) => {
  const out = [];
  for (const path of paths) {
    const params = {hubUrl, accessToken: token, repo, path, range};
    let buf;
    if (stream) {
      const s = await window.demo.xet.hub.downloadFileStream(params);
      if (s === null) { out.push(null); continue; }
      buf = await new Response(s).arrayBuffer();
    } else {
      const blob = await window.demo.xet.hub.downloadFile(params);
      if (blob === null) { out.push(null); continue; }
      buf = await blob.arrayBuffer();
    }
    out.push({sha256: await window.sha256Hex(buf), size: buf.byteLength});
  }
  return out;
}
"""

LIST_JS = """
async ({hubUrl, token, repo}) => {
  const out = [];
  for await (const f of window.demo.xet.hub.listFiles(
      {hubUrl, accessToken: token, repo, recursive: true, expand: true})) {
    out.push({path: f.path, type: f.type, size: f.size, xetHash: f.xetHash ?? null,
              lastCommit: f.lastCommit ? f.lastCommit.id : null});
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def page(open_page: Any) -> DemoPage:
    return open_page()


@pytest.fixture(scope="module")
def hub(page: DemoPage) -> dict[str, str]:
    """The Hub as the page sees it (another origin) and a write token of user ``hana``."""
    return {
        "hubUrl": page.server.url.replace("127.0.0.1", "localhost"),
        "token": mint_token(page.server, "hana"),
    }


def put_fixtures(page: DemoPage, files: dict[str, bytes]) -> list[list[str]]:
    pairs = []
    for path, data in files.items():
        name = path.replace("/", "__")
        page.add_fixture(name, data)
        pairs.append([name, path])
    return pairs


def upload(page: DemoPage, hub: dict[str, str], repo: str, files: list[list[str]],
           abort_at: str | None = None, **options: Any) -> dict[str, Any]:
    arg = {**hub, "repo": repo, "files": files, "options": options, "abortAt": abort_at}
    return page.evaluate(UPLOAD_JS, arg)


def download(page: DemoPage, hub: dict[str, str], repo: str, paths: list[str],
             stream: bool = False, byte_range: list[int] | None = None) -> list[Any]:
    arg = {**hub, "repo": repo, "paths": paths, "stream": stream, "range": byte_range}
    return page.evaluate(DOWNLOAD_JS, arg)


def head(page: DemoPage, repo: str) -> str:
    r = httpx.get(f"{page.server.url}/api/models/{repo}/revision/main",
                  headers=page.server.token_headers)  # fmt: skip
    assert r.status_code == 200, r.text
    return r.json()["sha"]


def create(page: DemoPage, hub: dict[str, str], repo: str) -> None:
    made = page.evaluate(
        "(p) => window.demo.xet.hub.createRepo(p)",
        {"hubUrl": hub["hubUrl"], "accessToken": hub["token"], "repo": repo},
    )
    assert made == {"repoUrl": f"{page.server.url}/{repo}", "id": repo}  # the public URL


def test_upload_files_then_the_real_clients_read_them(
    page: DemoPage, hub: dict[str, str], tmp_path: Path
) -> None:
    repo = f"hana/{unique('page')}"
    files = three_files(seed=500)
    create(page, hub, repo)
    before = page.server.stats()["requests"]

    out = upload(page, hub, repo, put_fixtures(page, files), commitTitle="from the page")

    result = out["result"]
    assert result["committed"] is True and result["commitOid"] == head(page, repo)
    assert result["commitUrl"] == f"{page.server.url}/{repo}/commit/{result['commitOid']}"
    reference = hf_xet.hash_files([str(p) for p in write_files(tmp_path, {
        "a": files["w/a.bin"], "b": files["w/b.bin"]}).values()])  # fmt: skip
    assert result["files"] == [
        {"path": "README.md", "size": len(files["README.md"]), "mode": "regular",
         "uploaded": True, "sha256": sha(files["README.md"]), "xetHash": None},
        *({"path": p, "size": len(files[p]), "mode": "lfs", "uploaded": True,
           "sha256": sha(files[p]), "xetHash": ref.hash}
          for p, ref in zip(["w/a.bin", "w/b.bin"], reference, strict=True)),
    ]  # fmt: skip
    assert result["metrics"]["dedupedBytes"] >= 2 * MIB  # b.bin shares a.bin's first MiBs
    assert out["phases"] == ["preuploading", "processing", "uploading_xorbs", "uploading_shard",
                             "validating_shard", "committing", "done"]  # fmt: skip
    total = sum(len(d) for d in files.values())
    assert out["last"]["bytesTotal"] == out["last"]["bytesProcessed"] == total
    after = page.server.stats()["requests"]
    assert after.get("hub_commit", 0) - before.get("hub_commit", 0) == 1
    assert after.get("shard_v2", 0) + after.get("shard_v1", 0) > before.get("shard_v2", 0) + \
        before.get("shard_v1", 0)  # fmt: skip
    assert after.get("hub_lfs_batch", 0) == before.get("hub_lfs_batch", 0)  # Xet, not LFS

    # unmodified huggingface_hub (CPython) and @huggingface/hub (Node) read what the page wrote
    expected = {p: {"sha256": sha(d), "size": len(d)} for p, d in files.items()}
    got = assert_ok(run_python_client(page.server, [
        *({"op": "hf_hub_download", "repo_id": repo, "filename": p} for p in files),
        {"op": "snapshot_download", "repo_id": repo},
    ], tmp_path / "hf-home", hub["token"]))  # fmt: skip
    assert got[:-1] == list(expected.values())
    assert got[-1] == {p: sha(d) for p, d in files.items()}
    node = assert_ok(run_node_client(page.server, [
        {"op": "downloadFile", "repo": repo, "path": p} for p in files], hub["token"]))  # fmt: skip
    assert node == list(expected.values())

    # the same files again: the preupload's oids show them unchanged, nothing is committed
    again = upload(page, hub, repo, put_fixtures(page, files))["result"]
    assert again["committed"] is False and again["commitOid"] == result["commitOid"]
    assert [f["mode"] for f in again["files"]] == ["unchanged"] * 3
    assert page.server.stats()["requests"].get("hub_commit", 0) == after.get("hub_commit", 0)


def test_files_committed_by_the_real_clients_download_verified(
    page: DemoPage, hub: dict[str, str], tmp_path: Path
) -> None:
    py_repo, js_repo = f"hana/{unique('py')}", f"hana/{unique('js')}"
    py_files = {"notes.md": b"# notes\n", "data/x.bin": binary(2 * MIB + 9, 510)}
    js_files = {"y.bin": binary(MIB + 3, 511), "hello.txt": b"hello from node\n"}
    write_tree(tmp_path / "py", py_files)
    write_tree(tmp_path / "js", js_files)
    assert_ok(run_python_client(page.server, [
        {"op": "create_repo", "repo_id": py_repo},
        {"op": "upload_folder", "repo_id": py_repo, "folder": str(tmp_path / "py")},
    ], tmp_path / "hf-home", hub["token"]))  # fmt: skip
    assert_ok(run_node_client(page.server, [
        {"op": "createRepo", "repo": js_repo},
        {"op": "uploadFiles", "repo": js_repo,
         "files": [[str(tmp_path / "js" / p), p] for p in js_files]},
    ], hub["token"]))  # fmt: skip

    for repo, files in ((py_repo, py_files), (js_repo, js_files)):
        want = [{"sha256": sha(d), "size": len(d)} for d in files.values()]
        assert download(page, hub, repo, list(files)) == want
        assert download(page, hub, repo, list(files), stream=True) == want
    x = py_files["data/x.bin"]
    assert download(page, hub, py_repo, ["data/x.bin"], byte_range=[MIB - 5, MIB + 100]) == [
        {"sha256": sha(x[MIB - 5 : MIB + 100]), "size": 105}]  # fmt: skip
    assert download(page, hub, py_repo, ["missing.bin"]) == [None]
    assert download(page, hub, py_repo, ["missing.bin"], stream=True) == [None]

    listed = page.evaluate(LIST_JS, {**hub, "repo": py_repo})
    by_path = {f["path"]: f for f in listed}
    assert by_path["data"]["type"] == "directory"
    assert {p: by_path[p]["size"] for p in py_files} == {p: len(d) for p, d in py_files.items()}
    assert by_path["data/x.bin"]["xetHash"] and by_path["notes.md"]["xetHash"] is None
    assert by_path["notes.md"]["lastCommit"] == head(page, py_repo)


def test_token_expiring_mid_upload_is_refreshed(page: DemoPage, hub: dict[str, str]) -> None:
    """Xet tokens of 32 s: the session refreshes those expiring within 30 s, so refreshes
    start ~2 s into the upload, which slow dedup answers and xorb uploads stretch."""
    repo = f"hana/{unique('ttl')}"
    create(page, hub, repo)
    pairs = put_fixtures(page, {"big.bin": binary(6 * MIB, 520)})
    page.server.set_faults(token_ttl=32, endpoints={
        "chunks": {"latency_ms": 1500},
        "xorb_grant": {"latency_ms": 1500},
        "xorb_upload": {"latency_ms": 1500},
    })  # fmt: skip
    try:
        out = upload(page, hub, repo, pairs)
    finally:
        page.server.set_faults()
    assert out.get("result", {}).get("committed") is True, out
    tokens = [e for e in page.server.request_log()
              if e["path"] == f"/api/models/{repo}/xet-write-token/main"]  # fmt: skip
    assert len(tokens) >= 2, tokens
    assert all(e["status"] == 200 for e in tokens)
    assert download(page, hub, repo, ["big.bin"])[0]["size"] == 6 * MIB


def test_stale_parent_commit_is_a_conflict(page: DemoPage, hub: dict[str, str]) -> None:
    repo = f"hana/{unique('stale')}"
    create(page, hub, repo)
    first = head(page, repo)
    pairs = put_fixtures(page, {"one.txt": b"one\n", "two.bin": binary(MIB, 530)})
    assert upload(page, hub, repo, pairs[:1], parentCommit=first)["result"]["committed"]
    second = head(page, repo)

    out = upload(page, hub, repo, pairs, parentCommit=first)

    assert out["error"]["name"] == "XetHubConflictError", out
    assert out["error"]["status"] == 409
    assert second in out["error"]["serverMessage"]
    assert head(page, repo) == second  # nothing committed; retrying on the new head works
    assert upload(page, hub, repo, pairs, parentCommit=second)["result"]["committed"]


def test_aborted_upload_leaves_the_branch_unchanged(page: DemoPage, hub: dict[str, str]) -> None:
    repo = f"hana/{unique('abort')}"
    create(page, hub, repo)
    first = head(page, repo)
    pairs = put_fixtures(page, {"a.txt": b"inline\n", "big.bin": binary(8 * MIB, 540)})
    page.server.set_faults(endpoints={"xorb_grant": {"latency_ms": 800},
                                      "xorb_upload": {"latency_ms": 800}})  # fmt: skip
    before = page.server.stats()["requests"].get("hub_commit", 0)
    try:
        out = upload(page, hub, repo, pairs, abort_at="uploading_xorbs")
    finally:
        page.server.set_faults()
    assert out["error"]["name"] == "AbortError", out
    assert "committing" not in out["phases"]
    assert head(page, repo) == first
    assert page.server.stats()["requests"].get("hub_commit", 0) == before
