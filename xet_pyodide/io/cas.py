"""CAS client: the protocol's HTTP calls (§7.4 xorbs, §7.5 shards, §7.6 global dedup).

Each method speaks exactly what hf_xet 1.8.0 speaks, including its fallbacks:

* xorbs: the upload-grant flow (``POST /v1/xorb-grants`` → ``PUT`` to the grant URL without
  our bearer → ``POST /v1/xorb-commits``), and the legacy ``POST /v1/xorbs/default/{hash}``
  when the server has no grant API (404/501) or the grant URL cannot be reached;
* shards: ``POST /v2/shards`` with its NDJSON progress stream (only the terminal frame tells
  success), ``POST /v1/shards`` on 404/501;
* dedup: ``GET /v1/chunks/default/{hash}`` → shard bytes, or ``None`` on any failure (the
  query is an optimisation; 429 is not retried).

Download calls (reconstruction, ranged xorb GETs) belong here too, next to these.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..core.hashes import MerkleHash
from ..errors import XetError, XetResponseError, XetServerError
from ..kernels import get_kernels
from .http import HttpClient, raise_for_status
from .retry import RetryPolicy
from .transport import Buffer, Response, StreamingResponse, TransportError

#: Grants tried per xorb before giving up (hf_xet ``client.max_xorb_grant_attempts``).
MAX_GRANT_ATTEMPTS = 3
#: Longest NDJSON line accepted from ``/v2/shards``.
MAX_NDJSON_LINE = 1 << 20

ShardEventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class XorbUploadResult:
    """``bytes_sent``: body bytes that went over the wire (0 when the server already had it);
    ``route``: "grant", "legacy" or "exists"."""

    bytes_sent: int
    route: str


@dataclass(frozen=True, slots=True)
class ShardUploadResult:
    """``route``: "v2" or "v1"; ``result``: the server's result code when it sent one
    (1 = registered, 0 = already known)."""

    bytes_sent: int
    route: str
    result: int | None


class _NoGrant(Exception):
    """Internal: fall back to the legacy xorb upload."""


class CasClient:
    """The CAS endpoints of one server. Shared by uploads and downloads of a session."""

    def __init__(
        self,
        endpoint: str,
        http: HttpClient,
        *,
        use_grants: bool = True,
        use_shard_v2: bool = True,
        dedup_retry: RetryPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.http = http
        self.use_grants = use_grants
        self.use_shard_v2 = use_shard_v2
        self._dedup_retry = dedup_retry or http.retry.with_attempts(2)

    def url(self, path: str) -> str:
        return f"{self.endpoint}{path}"

    # ------------------------------------------------------------------ xorbs

    async def upload_xorb(self, xorb_hash: MerkleHash, body: Buffer) -> XorbUploadResult:
        """Upload a serialized xorb (chunk records, no footer). Idempotent."""
        if self.use_grants:
            try:
                return await self._upload_with_grant(xorb_hash, body)
            except _NoGrant:
                pass
        return await self._upload_legacy(xorb_hash, body)

    async def _upload_legacy(self, xorb_hash: MerkleHash, body: Buffer) -> XorbUploadResult:
        what = f"xorb upload {xorb_hash.hex()[:16]}"
        resp = await self.http.send(
            "POST", self.url(f"/v1/xorbs/default/{xorb_hash.hex()}"), what=what, body=body
        )
        raise_for_status(resp, what, ok=(200, 201))
        return XorbUploadResult(len(body), "legacy")

    async def _upload_with_grant(self, xorb_hash: MerkleHash, body: Buffer) -> XorbUploadResult:
        hex_hash = xorb_hash.hex()
        checksum = str(get_kernels().crc64_nvme(body))
        request = json.dumps(
            {"length": len(body), "checksum": {"algo": "crc64nvme", "value": checksum}}
        )
        what = f"xorb upload grant {hex_hash[:16]}"
        for _ in range(MAX_GRANT_ATTEMPTS):
            resp = await self.http.send(
                "POST",
                self.url(f"/v1/xorb-grants/default/{hex_hash}"),
                what=what,
                body=request.encode(),
                headers={"Content-Type": "application/json"},
            )
            if resp.status in (404, 501):
                self.use_grants = False  # the server has no grant API: do not ask again
                raise _NoGrant
            if resp.status == 200:
                return XorbUploadResult(0, "exists")
            raise_for_status(resp, what, ok=(201,))
            grant = _parse_grant(resp)
            if not await self._put_to_grant(grant, body, hex_hash):
                continue  # grant expired/refused: ask for a new one
            commit = await self.http.send(
                "POST",
                self.url(f"/v1/xorb-commits/default/{hex_hash}/grant/{grant['id']}"),
                what=f"xorb commit {hex_hash[:16]}",
            )
            if commit.status == 404:
                continue  # the server saw no data for this grant: start over
            raise_for_status(commit, f"xorb commit {hex_hash[:16]}", ok=(200, 201, 204))
            return XorbUploadResult(len(body), "grant")
        raise XetServerError(
            f"xorb upload {hex_hash[:16]} failed: {MAX_GRANT_ATTEMPTS} grants unused"
        )

    async def _put_to_grant(self, grant: dict[str, Any], body: Buffer, hex_hash: str) -> bool:
        """PUT the body to the grant URL. False: get a new grant; _NoGrant: URL unreachable."""
        what = f"xorb upload {hex_hash[:16]} to grant URL"
        try:
            resp = await self.http.send(
                grant["method"],
                grant["url"],
                what=what,
                body=body,
                headers=grant["headers"],
                auth=False,
                external=True,
            )
        except XetServerError as exc:
            if exc.status is None:  # never got an HTTP answer: the URL is unreachable
                raise _NoGrant from exc
            raise
        if resp.status == 403:
            return False
        if resp.status == 412 or 200 <= resp.status < 300:
            return True
        raise_for_status(resp, what)
        return True  # unreachable: raise_for_status raised

    # ------------------------------------------------------------------ shards

    async def upload_shard(
        self, body: Buffer, on_event: ShardEventCallback | None = None
    ) -> ShardUploadResult:
        """Register a shard (upload form: no footer). Every xorb it references must exist."""
        if self.use_shard_v2:
            result = await self._upload_shard_v2(body, on_event)
            if result is not None:
                return result
            self.use_shard_v2 = False
        resp = await self.http.send("POST", self.url("/v1/shards"), what="shard upload", body=body)
        raise_for_status(resp, "shard upload", ok=(200, 201))
        code = _json_field(resp.body, "result")
        return ShardUploadResult(len(body), "v1", code if isinstance(code, int) else None)

    async def _upload_shard_v2(
        self, body: Buffer, on_event: ShardEventCallback | None
    ) -> ShardUploadResult | None:
        state = self.http.retry.start()
        while True:
            resp = await self.http.send_stream(
                "POST", self.url("/v2/shards"), what="shard upload", body=body
            )
            if isinstance(resp, Response):
                if resp.status in (404, 501):
                    return None
                raise_for_status(resp, "shard upload")
            assert isinstance(resp, StreamingResponse)
            try:
                terminal = await _read_shard_progress(resp, on_event)
            except TransportError as exc:
                terminal = {"type": "error", "message": str(exc), "retryable": True}
            finally:
                await resp.aclose()
            if terminal.get("type") == "result":
                code = terminal.get("result")
                return ShardUploadResult(len(body), "v2", code if isinstance(code, int) else None)
            message = str(terminal.get("message") or "no result frame")
            if terminal.get("retryable") is True and await state.backoff():
                continue
            raise XetServerError(
                f"shard upload failed: {message}", request_id=resp.request_id, url=resp.url
            )

    # ------------------------------------------------------------------ global dedup

    async def query_dedup_shard(self, chunk_hash: MerkleHash) -> bytes | None:
        """Shard bytes describing xorbs that contain ``chunk_hash`` (HMAC-protected), or None."""
        try:
            resp = await self.http.send(
                "GET",
                self.url(f"/v1/chunks/default/{chunk_hash.hex()}"),
                what="global dedup query",
                retry=self._dedup_retry,
                retry_429=False,
            )
        except XetError:
            return None
        if resp.status != 200 or not resp.body:
            return None
        return resp.body


def _parse_grant(resp: Response) -> dict[str, Any]:
    try:
        data = json.loads(resp.body)
        grant = {
            "id": str(data["id"]),
            "method": str(data.get("method") or "PUT").upper(),
            "url": str(data["url"]),
            "headers": {str(k): str(v) for k, v in (data.get("headers") or {}).items()},
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        raise XetResponseError(
            "xorb upload grant is not valid JSON with id/url",
            status=resp.status,
            request_id=resp.request_id,
            url=resp.url,
        ) from None
    if not grant["url"].startswith(("http://", "https://")) or not grant["id"]:
        raise XetResponseError(
            "xorb upload grant has no usable URL", status=resp.status, request_id=resp.request_id
        )
    return grant


async def _read_shard_progress(
    resp: StreamingResponse, on_event: ShardEventCallback | None
) -> dict[str, Any]:
    """Read NDJSON frames until a terminal one (``result`` or ``error``); return it.

    A stream that ends without a terminal frame yields a retryable error frame.
    """
    buffer = bytearray()
    async for block in resp.aiter_bytes():
        buffer += block
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > MAX_NDJSON_LINE:
                    raise _bad_frame(resp, "NDJSON line longer than 1 MiB")
                break
            line = bytes(buffer[:newline]).strip()
            del buffer[: newline + 1]
            frame = _parse_frame(resp, line)
            if frame is None:
                continue
            if frame.get("type") in ("result", "error"):
                return frame
            if on_event is not None:
                maybe = on_event(frame)
                if maybe is not None:
                    await maybe
    tail = _parse_frame(resp, bytes(buffer).strip())
    if tail is not None and tail.get("type") in ("result", "error"):
        return tail
    return {
        "type": "error",
        "message": "shard progress stream ended without a result",
        "retryable": True,
    }


def _parse_frame(resp: StreamingResponse, line: bytes) -> dict[str, Any] | None:
    if not line:
        return None
    try:
        frame = json.loads(line)
    except ValueError:
        raise _bad_frame(resp, f"not JSON: {line[:80]!r}") from None
    if not isinstance(frame, dict):
        raise _bad_frame(resp, f"not a JSON object: {line[:80]!r}")
    if "type" not in frame and "result" in frame:
        frame = {"type": "result", **frame}  # a plain v1-style answer on the v2 route
    return frame


def _bad_frame(resp: StreamingResponse, detail: str) -> XetResponseError:
    return XetResponseError(
        f"shard upload: malformed progress frame ({detail})",
        status=resp.status,
        request_id=resp.request_id,
        url=resp.url,
    )


def _json_field(body: bytes, name: str) -> Any:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data.get(name) if isinstance(data, dict) else None


__all__ = ["MAX_GRANT_ATTEMPTS", "CasClient", "ShardUploadResult", "XorbUploadResult"]
