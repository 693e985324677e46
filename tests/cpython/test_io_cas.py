"""CasClient against scripted fakes: grant flow and its fallbacks, shard v2 NDJSON and v1
fallback, dedup query semantics."""

from __future__ import annotations

import json
import random

import pytest

from xet_pyodide.core.crc import crc64_nvme
from xet_pyodide.core.hashes import MerkleHash
from xet_pyodide.errors import XetResponseError, XetServerError
from xet_pyodide.io.cas import CasClient
from xet_pyodide.io.http import HttpClient
from xet_pyodide.io.retry import RetryPolicy
from xet_pyodide.io.testing import MockRequest, MockTransport, json_response
from xet_pyodide.io.tokens import TokenInfo, TokenSource
from xet_pyodide.io.transport import Response, TransportError

H = MerkleHash(bytes(range(32)))
BODY = random.Random(5).randbytes(3000)


async def _no_sleep(_: float) -> None:
    return None


def make(handler, **kw) -> tuple[CasClient, MockTransport]:
    transport = MockTransport(handler, **kw)
    retry = RetryPolicy(max_attempts=3, sleep=_no_sleep)
    http = HttpClient(transport, TokenSource(TokenInfo("tok", 10**10)), retry=retry)
    return CasClient("http://cas/", http), transport


class GrantServer:
    """Scripted grant flow: ``puts``/``commits`` are status lists consumed per call."""

    def __init__(self, grant=201, puts=(200,), commits=(200,), put_raises=False) -> None:
        self.grant, self.puts, self.commits = grant, list(puts), list(commits)
        self.put_raises = put_raises
        self.grants = 0

    def __call__(self, req: MockRequest) -> Response:
        if req.path.startswith("/v1/xorb-grants/default/"):
            self.grants += 1
            if self.grant != 201:
                return json_response(self.grant, {})
            return json_response(
                201,
                {
                    "id": f"g{self.grants}",
                    "method": "PUT",
                    "url": f"http://bucket/put/{self.grants}?sig=1",
                    "headers": {"X-Upload-Sig": "s"},
                },
            )
        if req.path.startswith("/put/"):
            if self.put_raises:
                raise TransportError("unreachable")
            return json_response(self.puts.pop(0), {})
        if req.path.startswith("/v1/xorb-commits/"):
            return json_response(self.commits.pop(0), {})
        if req.path.startswith("/v1/xorbs/default/"):
            return json_response(200, {"was_inserted": True})
        return json_response(404, {})


async def test_grant_flow_happy_path() -> None:
    server = GrantServer()
    cas, transport = make(server)
    result = await cas.upload_xorb(H, BODY)
    assert (result.route, result.bytes_sent) == ("grant", len(BODY))
    grant_req, put_req, commit_req = transport.requests
    assert grant_req.path == f"/v1/xorb-grants/default/{H.hex()}"
    assert json.loads(grant_req.body) == {
        "length": len(BODY),
        "checksum": {"algo": "crc64nvme", "value": str(crc64_nvme(BODY))},
    }
    assert put_req.method == "PUT" and put_req.body == BODY
    assert put_req.header("x-upload-sig") == "s"
    assert put_req.header("authorization") is None
    assert commit_req.path == f"/v1/xorb-commits/default/{H.hex()}/grant/g1"
    assert commit_req.header("authorization") == "Bearer tok"


async def test_grant_request_sends_a_known_crc_as_given() -> None:
    # the packer's CRC-64 (computed while packing) goes out as is: no second pass here
    cas, transport = make(GrantServer())
    await cas.upload_xorb(H, BODY, 12345)
    assert json.loads(transport.requests[0].body)["checksum"]["value"] == "12345"


async def test_grant_200_means_already_stored() -> None:
    cas, transport = make(GrantServer(grant=200))
    result = await cas.upload_xorb(H, BODY)
    assert (result.route, result.bytes_sent) == ("exists", 0)
    assert len(transport.requests) == 1


async def test_no_grant_api_falls_back_to_legacy_and_remembers() -> None:
    cas, transport = make(GrantServer(grant=404))
    assert (await cas.upload_xorb(H, BODY)).route == "legacy"
    assert (await cas.upload_xorb(H, BODY)).route == "legacy"
    paths = [r.path.split("/")[2] for r in transport.requests]
    assert paths == ["xorb-grants", "xorbs", "xorbs"]


async def test_expired_grant_and_lost_commit_get_new_grants() -> None:
    server = GrantServer(puts=(403, 200, 200), commits=(404, 200))
    cas, _ = make(server)
    assert (await cas.upload_xorb(H, BODY)).route == "grant"
    assert server.grants == 3


async def test_unreachable_grant_url_falls_back_to_legacy() -> None:
    cas, transport = make(GrantServer(put_raises=True))
    assert (await cas.upload_xorb(H, BODY)).route == "legacy"
    assert transport.requests[-1].path == f"/v1/xorbs/default/{H.hex()}"


async def test_grant_garbage_is_typed_error() -> None:
    cas, _ = make(lambda r: Response(201, {"x-request-id": "rq"}, b"<html>"))
    with pytest.raises(XetResponseError) as info:
        await cas.upload_xorb(H, BODY)
    assert info.value.request_id == "rq"


def ndjson(*frames) -> bytes:
    return b"".join(json.dumps(f).encode() + b"\n" for f in frames)


async def test_shard_v2_progress_then_result() -> None:
    frames = ndjson(
        {"type": "validating", "verified": 1, "total": 2},
        {"type": "unknown-future-frame"},
        {"type": "committing", "stage": "syncing"},
        {"type": "result", "result": 1},
    )
    cas, transport = make(lambda r: Response(200, {}, frames), stream_block=5)
    seen = []
    result = await cas.upload_shard(b"SHARD", seen.append)
    assert (result.route, result.result, result.bytes_sent) == ("v2", 1, 5)
    assert [f["type"] for f in seen] == ["validating", "unknown-future-frame", "committing"]
    assert transport.requests[0].path == "/v2/shards"


async def test_shard_v2_retryable_error_frame_is_retried() -> None:
    answers = [
        ndjson({"type": "error", "message": "busy", "retryable": True}),
        ndjson({"type": "validating", "verified": 0, "total": 1}),  # stream ends: retryable
        ndjson({"type": "result"}),
    ]
    cas, transport = make(lambda r: Response(200, {}, answers.pop(0)))
    assert (await cas.upload_shard(b"S")).route == "v2"
    assert len(transport.requests) == 3


async def test_shard_v2_fatal_error_frame() -> None:
    body = ndjson({"type": "error", "message": "xorb abc missing"})
    cas, transport = make(lambda r: Response(200, {"x-request-id": "r9"}, body))
    with pytest.raises(XetServerError, match="xorb abc missing") as info:
        await cas.upload_shard(b"S")
    assert info.value.request_id == "r9" and len(transport.requests) == 1


async def test_shard_v2_garbage_frame() -> None:
    cas, _ = make(lambda r: Response(200, {}, b"this is not json\n"))
    with pytest.raises(XetResponseError):
        await cas.upload_shard(b"S")


@pytest.mark.parametrize("status", [404, 501])
async def test_shard_v1_fallback(status: int) -> None:
    def handler(req: MockRequest) -> Response:
        if req.path == "/v2/shards":
            return json_response(status, {})
        return json_response(200, {"result": 0})

    cas, transport = make(handler)
    result = await cas.upload_shard(b"SHARD")
    assert (result.route, result.result) == ("v1", 0)
    assert [r.body for r in transport.requests] == [b"SHARD", b"SHARD"]
    await cas.upload_shard(b"SHARD")  # remembered: straight to v1
    assert [r.path for r in transport.requests][2:] == ["/v1/shards"]


async def test_shard_v1_rejection_is_server_error() -> None:
    cas, _ = make(lambda r: json_response(404 if r.path == "/v2/shards" else 400, {"error": "bad"}))
    with pytest.raises(XetServerError, match="bad"):
        await cas.upload_shard(b"S")


async def test_dedup_query() -> None:
    answers = {200: Response(200, {}, b"shard"), 404: json_response(404, {})}
    cas, transport = make(lambda r: answers[200])
    assert await cas.query_dedup_shard(H) == b"shard"
    assert transport.requests[0].path == f"/v1/chunks/default/{H.hex()}"
    cas, transport = make(lambda r: answers[404])
    assert await cas.query_dedup_shard(H) is None
    cas, transport = make(lambda r: json_response(429, {}))
    assert await cas.query_dedup_shard(H) is None
    assert len(transport.requests) == 1  # 429 is not retried for dedup
    cas, transport = make(lambda r: json_response(500, {}))
    assert await cas.query_dedup_shard(H) is None
    assert len(transport.requests) == 2  # short retry budget
