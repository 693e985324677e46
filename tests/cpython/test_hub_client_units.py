"""Units of ``xet_pyodide.hub``: repository names, payloads, ``Link`` headers, the Hub's errors
as typed errors, what is sent and when (in-memory transport; the flows against the real local
Hub are in test_hub_client_e2e.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import pytest

from xet_pyodide.errors import (
    XetAuthError,
    XetHubAuthError,
    XetHubConflictError,
    XetHubError,
    XetHubNotFoundError,
    XetIntegrityError,
    XetNotFoundError,
    XetResponseError,
)
from xet_pyodide.hub import HubClient, RepoId, parse_repo
from xet_pyodide.hub.api import HubApi
from xet_pyodide.hub.payloads import (
    InlineAddition,
    LfsAddition,
    commit_body,
    git_blob_oid,
    parse_link_header,
    parse_preupload,
)
from xet_pyodide.hub.upload import CommitOptions, HubUpload
from xet_pyodide.io.retry import RetryPolicy
from xet_pyodide.io.testing import MockRequest, MockTransport, json_response
from xet_pyodide.io.transport import Response

HUB = "http://hub.test"
OID = "a" * 40


async def _no_sleep(_seconds: float) -> None:
    return None


FAST = RetryPolicy(max_attempts=3, sleep=_no_sleep)


def test_repo_names() -> None:
    assert parse_repo("me/model") == RepoId("me/model", "model")
    assert parse_repo("datasets/me/data") == RepoId("me/data", "dataset")
    assert parse_repo({"type": "space", "name": "me/app"}).api_path == "/api/spaces/me/app"
    assert parse_repo("me/data", "dataset").web_path == "/datasets/me/data"
    assert parse_repo("me/model").web_path == "/me/model"
    assert str(parse_repo("spaces/me/app")) == "spaces/me/app"
    for bad in ("nobody", "a/b/c", "me/-x", "me/a..b", "me/a--b", "/x", "me/"):
        with pytest.raises(ValueError):
            parse_repo(bad)
    with pytest.raises(ValueError):
        parse_repo("datasets/me/data", "model")
    with pytest.raises(ValueError):
        RepoId("me/x", "bucket")
    with pytest.raises(TypeError):
        parse_repo(42)


def test_commit_payload_lines() -> None:
    body = commit_body(
        "title",
        [LfsAddition("w.bin", "b" * 64, 10), InlineAddition("a.txt", b"hi\n")],
        "more",
        OID,
    )
    lines = [json.loads(line) for line in body.splitlines()]
    assert body.endswith(b"\n")
    assert lines == [
        {"key": "header",
         "value": {"summary": "title", "description": "more", "parentCommit": OID}},
        {"key": "lfsFile",
         "value": {"path": "w.bin", "algo": "sha256", "oid": "b" * 64, "size": 10}},
        {"key": "file",
         "value": {"content": base64.b64encode(b"hi\n").decode(), "path": "a.txt",
                   "encoding": "base64"}},
    ]  # fmt: skip
    assert "parentCommit" not in json.loads(commit_body("t", []).splitlines()[0])["value"]
    with pytest.raises(ValueError):
        commit_body("t", [], parent_commit="main")


def test_git_blob_oid_is_gits() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_oid(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert git_blob_oid(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_link_header() -> None:
    value = '<http://h/a?x=1>; rel="xet-auth", <http://h/b>; rel="xet-reconstruction-info"'
    assert parse_link_header(value) == {
        "xet-auth": "http://h/a?x=1",
        "xet-reconstruction-info": "http://h/b",
    }
    assert parse_link_header('<http://h/2>; rel=next') == {"next": "http://h/2"}
    assert parse_link_header("") == {}


def test_preupload_answer_is_checked() -> None:
    ok = json.dumps({"files": [{"path": "a", "uploadMode": "lfs", "shouldIgnore": False,
                                "oid": None}]}).encode()  # fmt: skip
    assert parse_preupload(ok, ["a"], HUB)["a"].mode == "lfs"
    for bad in (b"nope", b"{}", json.dumps({"files": [{"path": "a", "uploadMode": "x"}]}).encode()):
        with pytest.raises(XetResponseError):
            parse_preupload(bad, ["a"], HUB)
    with pytest.raises(XetResponseError, match="'b'"):
        parse_preupload(ok, ["a", "b"], HUB)


def hub_answer(status: int, message: str, code: str | None = None) -> Response:
    headers = {"X-Error-Message": message, "X-Request-Id": "rid-1"}
    if code:
        headers["X-Error-Code"] = code
    return json_response(status, {"error": message}, headers)


@pytest.mark.parametrize(
    ("status", "code", "kind", "also"),
    [
        (404, "RepoNotFound", XetHubNotFoundError, XetNotFoundError),
        (404, "EntryNotFound", XetHubNotFoundError, XetNotFoundError),
        (401, None, XetHubAuthError, XetAuthError),
        (403, None, XetHubAuthError, XetAuthError),
        (409, None, XetHubConflictError, XetHubError),
        (422, None, XetHubError, XetHubError),
        (503, None, XetHubError, XetHubError),  # after the retries
    ],
)
async def test_hub_refusals_are_typed(
    status: int, code: str | None, kind: type, also: type
) -> None:
    transport = MockTransport(lambda _r: hub_answer(status, "the Hub says no", code))
    api = HubApi(HUB, "hf_x", transport, retry=FAST)
    with pytest.raises(kind) as info:
        await api.revision_sha(RepoId("me/x"), "main")
    error = info.value
    assert isinstance(error, also) and isinstance(error, XetHubError)
    assert (error.status, error.error_code) == (status, code)
    assert error.server_message == "the Hub says no"
    assert error.request_id == "rid-1"
    assert len(transport.requests) == (3 if status == 503 else 1)
    assert transport.requests[0].header("Authorization") == "Bearer hf_x"


class FakeHub:
    """A scripted Hub: preupload says ``mode`` for every path (with ``oids``), commits answer
    ``commit_status``; every request is recorded by the transport."""

    def __init__(self, mode: str = "regular", oids: dict[str, str] | None = None,
                 commit_status: int = 200) -> None:  # fmt: skip
        self.mode = mode
        self.oids = oids or {}
        self.commit_status = commit_status
        self.transport = MockTransport(self.handle)

    def handle(self, request: MockRequest) -> Response:
        path = request.path
        if "/preupload/" in path:
            files = json.loads(request.body or b"{}")["files"]
            return json_response(200, {"files": [
                {"path": f["path"], "uploadMode": self.mode, "shouldIgnore": f["path"] == "skip",
                 "oid": self.oids.get(f["path"])} for f in files]})  # fmt: skip
        if "/commit/" in path:
            if self.commit_status != 200:
                return hub_answer(self.commit_status, "commit refused")
            return json_response(200, {"commitOid": "c" * 40, "commitUrl": f"{HUB}/me/x/commit/c"})
        if "/revision/" in path:
            return json_response(200, {"sha": "d" * 40})
        return json_response(404, {"error": "not here"})

    def paths(self) -> list[str]:
        return [r.method + " " + r.path for r in self.transport.requests]


async def test_inline_commit_and_skips() -> None:
    content = b"some text\n"
    hub = FakeHub(oids={"same.txt": git_blob_oid(content)})
    client = HubClient(HUB, "hf_x", transport=hub.transport, retry=FAST)
    events: list[dict[str, Any]] = []
    files = [("a.txt", b"new\n"), ("same.txt", content), ("skip", b"ignored\n")]
    result = await client.upload_files("me/x", files, progress=events.append)
    assert hub.paths() == [
        "POST /api/models/me/x/preupload/main",
        "POST /api/models/me/x/commit/main",
    ]
    lines = [json.loads(x) for x in hub.transport.requests[1].body.splitlines()]
    assert [line["key"] for line in lines] == ["header", "file"]
    assert lines[0]["value"]["summary"] == "Upload 1 file"
    assert [(f.path, f.mode, f.uploaded) for f in result.files] == [
        ("a.txt", "regular", True), ("same.txt", "unchanged", False), ("skip", "ignored", False)]
    assert result.commit_oid == "c" * 40 and result.committed
    assert [e["phase"] for e in events] == ["preuploading", "committing", "done"]
    assert events[-1]["bytes_total"] == events[-1]["bytes_processed"] == 4

    # nothing changed: no commit, the branch's head is the answer
    hub2 = FakeHub(oids={"same.txt": git_blob_oid(content)})
    client2 = HubClient(HUB, "hf_x", transport=hub2.transport, retry=FAST)
    result = await client2.upload_files("me/x", [("same.txt", content)])
    assert not result.committed and result.commit_oid == "d" * 40
    assert hub2.paths()[-1] == "GET /api/models/me/x/revision/main"


async def test_hub_call_retries_are_announced_in_the_upload_progress() -> None:
    hub = FakeHub()
    answer = hub.handle
    failures = iter([hub_answer(503, "busy"), hub_answer(502, "bad gateway")])

    def flaky(request: MockRequest) -> Response:  # the first two preuploads fail
        if "/preupload/" in request.path:
            failed = next(failures, None)
            if failed is not None:
                return failed
        return answer(request)

    hub.transport = MockTransport(flaky)
    told: list[Any] = []
    policy = FAST.announcing(told.append)  # the caller's own listener still hears them
    client = HubClient(HUB, "hf_x", transport=hub.transport, retry=policy)
    events: list[dict[str, Any]] = []
    result = await client.upload_files("me/x", [("a.txt", b"new\n")], progress=events.append)
    assert result.committed
    announced = [e["retry"] for e in events if "retry" in e]
    assert [(r["what"], r["attempt"], r["max_attempts"]) for r in announced] == [
        ("preupload", 1, 3), ("preupload", 2, 3)]
    assert "503" in announced[0]["reason"] and "502" in announced[1]["reason"]
    assert [e["retries"] for e in events if "retry" in e] == [1, 2]
    assert events[-1]["phase"] == "done" and events[-1]["retries"] == 2
    assert [(n.what, n.attempt) for n in told] == [("preupload", 1), ("preupload", 2)]
    assert hub.paths().count("POST /api/models/me/x/preupload/main") == 3
    # the client the caller holds is unchanged: its policy has only the caller's listener
    assert client.api.http.retry.on_retry == told.append


async def test_a_failed_commit_is_not_retried() -> None:
    hub = FakeHub(commit_status=500)
    client = HubClient(HUB, "hf_x", transport=hub.transport, retry=FAST)
    with pytest.raises(XetHubError) as info:
        await client.upload_files("me/x", [("a.txt", b"x")])
    assert info.value.status == 500
    assert hub.paths().count("POST /api/models/me/x/commit/main") == 1


async def test_abort_is_refused_once_the_commit_is_sent() -> None:
    hub = FakeHub()
    client = HubClient(HUB, "hf_x", transport=hub.transport, retry=FAST)
    answers: list[bool] = []
    upload: HubUpload

    def progress(event: dict[str, Any]) -> None:
        if event["phase"] in ("committing", "done"):
            answers.append(upload.request_abort())

    upload = client.upload("me/x", [("a.txt", b"x")], progress=progress)
    assert client.upload("me/x", [("a.txt", b"x")]).request_abort() is True  # not started
    result = await upload.run()  # the abort asked at "committing" and "done" changes nothing
    assert answers == [False, False] and result.committed

    # asked before the commit (and refused: e.g. while a shard was being sent): no commit
    hub = FakeHub()
    client = HubClient(HUB, "hf_x", transport=hub.transport, retry=FAST)
    upload = client.upload("me/x", [("a.txt", b"x")])
    upload.abort_requested = True
    with pytest.raises(Exception, match="aborted before the commit"):
        await upload.run()
    assert not any("/commit/" in p for p in hub.paths())


async def test_files_and_options_are_checked() -> None:
    client = HubClient(HUB, "hf_x", transport=FakeHub().transport)
    with pytest.raises(ValueError, match="twice"):
        client.upload("me/x", [("a", b"1"), ("a", b"2")])
    with pytest.raises(ValueError, match="no files"):
        client.upload("me/x", [])
    with pytest.raises(TypeError):
        client.upload("me/x", [("a", 3)])
    with pytest.raises(ValueError):
        HubClient("hub.test", "t")
    assert CommitOptions().branch == "main"


async def test_a_regular_download_is_checked_against_its_etag() -> None:
    content = b"regular file\n"

    def serve(etag: str) -> MockTransport:
        def handle(request: MockRequest) -> Response:
            headers = {"ETag": f'"{etag}"', "X-Repo-Commit": "e" * 40}
            if request.header("Range") == "bytes=0-0":
                headers["Content-Range"] = f"bytes 0-0/{len(content)}"
                return Response(206, headers, content[:1])
            return Response(200, headers, content)

        return MockTransport(handle)

    good = HubClient(HUB, None, transport=serve(git_blob_oid(content)))
    assert await good.download_file("me/x", "f.txt") == content
    info = await good.file_info("me/x", "f.txt")
    assert (info.size, info.commit, info.xet_hash) == (len(content), "e" * 40, None)
    sha = HubClient(HUB, None, transport=serve(hashlib.sha256(content).hexdigest()))
    assert await sha.download_file("me/x", "f.txt") == content
    bad = HubClient(HUB, None, transport=serve(git_blob_oid(b"other")))
    with pytest.raises(XetIntegrityError):
        await bad.download_file("me/x", "f.txt")
    assert await bad.download_file("me/x", "f.txt", byte_range=(0, 3)) == content[:4]


def test_default_endpoint_and_token_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1/")
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    client = HubClient(transport=FakeHub().transport)
    assert client.endpoint == "http://127.0.0.1:1" and client.api.token == "hf_env"
    explicit = HubClient("http://127.0.0.1:2", "hf_arg", transport=FakeHub().transport)
    assert explicit.endpoint == "http://127.0.0.1:2" and explicit.api.token == "hf_arg"
    monkeypatch.delenv("HF_ENDPOINT")
    monkeypatch.delenv("HF_TOKEN")
    client = HubClient(transport=FakeHub().transport)
    assert client.endpoint == "https://huggingface.co" and client.api.token is None


async def test_a_redirected_file_is_fetched_again_from_the_hub() -> None:
    """A resolve answered from another host (a CDN the redirect led to): the content is then
    fetched from the resolve URL again, never with the Hub token from that host's URL."""
    content = b"\0large file kept outside Xet"

    def handle(request: MockRequest) -> Response:
        headers = {"Content-Range": f"bytes 0-0/{len(content)}"}
        body = content[:1] if request.header("Range") == "bytes=0-0" else content
        status = 206 if request.header("Range") == "bytes=0-0" else 200
        return Response(status, headers, body, url="http://cdn.test/blob?X-Amz-Signature=s")

    transport = MockTransport(handle)
    client = HubClient(HUB, "hf_x", transport=transport)
    assert await client.download_file("me/x", "big.bin") == content
    assert [r.url for r in transport.requests] == [f"{HUB}/me/x/resolve/main/big.bin"] * 2


class _DigestSource:
    """A large file whose SHA-256 is computed elsewhere: ``upload_sha256`` hands out a Future
    (as a WebCrypto digest under Pyodide would be), remembered for the test."""

    path = "big.bin"
    size = 1 << 20

    def __init__(self) -> None:
        self.digest: asyncio.Future[str] | None = None

    async def head(self, n: int) -> bytes:
        return b"\0" * n

    async def read_all(self) -> bytes:  # pragma: no cover - an lfs file is never read whole
        raise AssertionError("read_all of a large file")

    async def sha256(self) -> str:  # pragma: no cover - the Hub names no oid here
        raise AssertionError("sha256 of a file the Hub does not have")

    def upload_sha256(self) -> Any:
        self.digest = asyncio.get_running_loop().create_future()
        return self.digest

    async def feed(self, upload: Any) -> None:  # pragma: no cover - refused before
        raise AssertionError("fed after start_upload refused")


class _RefusingSession:
    """An upload session whose ``start_upload`` refuses every file."""

    finalize_cancellable = True

    def __init__(self) -> None:
        self.closed = False

    def start_upload(self, name: str, size: int, sha256: Any) -> Any:
        raise RuntimeError("this batch of uploads was finalized or aborted")

    async def aclose(self) -> None:
        self.closed = True


async def test_a_refused_file_cancels_its_digest() -> None:
    hub = FakeHub(mode="lfs")
    api = HubClient(HUB, "hf_x", transport=hub.transport, retry=FAST).api
    source = _DigestSource()
    session = _RefusingSession()

    async def open_session(token_url: str, progress: Any, api: HubApi) -> Any:
        return session

    upload = HubUpload(api, parse_repo("me/x"), [source], CommitOptions(), open_session)
    with pytest.raises(RuntimeError, match="finalized or aborted"):
        await upload.run()
    assert source.digest is not None and source.digest.cancelled()
    assert session.closed
    assert not any("/commit/" in p for p in hub.paths())
