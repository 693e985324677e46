"""CAS client: the protocol's HTTP calls (§7.4 xorbs, §7.5 shards, §7.6 global dedup).

Each method speaks exactly what hf_xet 1.8.0 speaks, including its fallbacks:

* xorbs: the upload-grant flow (``POST /v1/xorb-grants`` → ``PUT`` to the grant URL without
  our bearer → ``POST /v1/xorb-commits``), and the legacy ``POST /v1/xorbs/default/{hash}``
  when the server has no grant API (404/501) or the grant URL cannot be reached;
* shards: ``POST /v2/shards`` with its NDJSON progress stream (only the terminal frame tells
  success), ``POST /v1/shards`` on 404/501;
* dedup: ``GET /v1/chunks/default/{hash}`` → shard bytes, or ``None`` on any failure (the
  query is an optimisation; 429 is not retried);
* reconstruction (§7.7): ``GET /v2/reconstructions/{id}`` with ``Range: bytes=S-E``, and
  ``/v1/reconstructions/{id}`` when v2 answers 404/501 (a 404 on v1 too means the file is
  unknown: :class:`XetNotFoundError`; 416: :class:`XetRangeError`);
* xorb bytes (§7.8): ``GET`` of a presigned URL with ``Range`` and without our bearer token,
  one range per request (:meth:`CasClient.fetch_xorb_range`, or streamed:
  :meth:`CasClient.open_xorb_range`), like hf_xet's default. A 403 raises
  :class:`PresignedUrlRejected` so the caller can get fresh URLs.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..core.hashes import MerkleHash
from ..core.reconstruction import Reconstruction, parse_reconstruction
from ..errors import XetAuthError, XetError, XetResponseError, XetServerError
from ..kernels import get_kernels
from .http import HttpClient, raise_for_status
from .retry import RetryPolicy
from .transport import Body, Buffer, DetachedBody, Response, StreamingResponse, TransportError

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


class PresignedUrlRejected(XetAuthError):
    """A presigned xorb URL answered 403 (expired or revoked): fetch a fresh reconstruction."""


class XorbBodyInterrupted(XetServerError):
    """The connection broke while xorb bytes were being read: retry the range (with backoff)."""


class CasClient:
    """The CAS endpoints of one server. Shared by uploads and downloads of a session."""

    def __init__(
        self,
        endpoint: str,
        http: HttpClient,
        *,
        use_grants: bool = True,
        use_shard_v2: bool = True,
        use_reconstruction_v2: bool = True,
        dedup_retry: RetryPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.http = http
        self.use_grants = use_grants
        self.use_shard_v2 = use_shard_v2
        self.use_reconstruction_v2 = use_reconstruction_v2
        self._dedup_retry = dedup_retry or http.retry.with_attempts(2)

    def url(self, path: str) -> str:
        return f"{self.endpoint}{path}"

    # ------------------------------------------------------------------ xorbs

    async def detach_body(self, body: Buffer, crc64: int | None = None) -> DetachedBody | None:
        """A copy of a xorb body outside Python memory (with its CRC when upload grants are
        in use), for :meth:`upload_xorb`, when the transport makes one (a browser ``Blob``);
        otherwise None. Lets the caller free the Python buffer before the upload. ``crc64``:
        the body's CRC-64/NVME if already known (the packer's), else computed here."""
        detach = getattr(self.http.transport, "detach", None)
        detached = await detach(body) if detach is not None else None
        if detached is not None and self.use_grants:
            # computed only for a body really detached: otherwise the grant upload does it
            detached.crc64 = crc64 if crc64 is not None else get_kernels().crc64_nvme(body)
        return detached

    async def upload_xorb(
        self,
        xorb_hash: MerkleHash,
        body: Body,
        crc64: int | None = None,
        on_asked: Callable[[], None] | None = None,
    ) -> XorbUploadResult:
        """Upload a serialized xorb (chunk records, no footer), or a body from
        :meth:`detach_body`. Idempotent. ``crc64``: the body's CRC-64/NVME if already known
        (grant uploads send it; computed otherwise). ``on_asked``: called once the server has
        seen the upload start (its grant answered; a legacy POST: when sent)."""
        if self.use_grants:
            try:
                return await self._upload_with_grant(xorb_hash, body, crc64, on_asked)
            except _NoGrant:
                pass
        return await self._upload_legacy(xorb_hash, body, on_asked)

    async def _upload_legacy(
        self, xorb_hash: MerkleHash, body: Body, on_asked: Callable[[], None] | None = None
    ) -> XorbUploadResult:
        if on_asked is not None:
            on_asked()
        what = f"xorb upload {xorb_hash.hex()[:16]}"
        resp = await self.http.send(
            "POST", self.url(f"/v1/xorbs/default/{xorb_hash.hex()}"), what=what, body=body
        )
        raise_for_status(resp, what, ok=(200, 201))
        return XorbUploadResult(len(body), "legacy")

    async def _upload_with_grant(
        self,
        xorb_hash: MerkleHash,
        body: Body,
        crc64: int | None = None,
        on_asked: Callable[[], None] | None = None,
    ) -> XorbUploadResult:
        hex_hash = xorb_hash.hex()
        if isinstance(body, DetachedBody):
            if body.crc64 is None:  # detached while grants were off: cannot happen
                raise _NoGrant
            checksum = str(body.crc64)
        else:
            checksum = str(crc64 if crc64 is not None else get_kernels().crc64_nvme(body))
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
            if on_asked is not None:
                on_asked()
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

    async def _put_to_grant(self, grant: dict[str, Any], body: Body, hex_hash: str) -> bool:
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

    async def xorb_exists(self, xorb_hash: MerkleHash) -> bool | None:
        """``HEAD /v1/xorbs/default/{hash}``: True (200), False (404), None for any other
        answer (a server without the route cannot vouch for the xorb either way)."""
        resp = await self.http.send(
            "HEAD",
            self.url(f"/v1/xorbs/default/{xorb_hash.hex()}"),
            what=f"xorb check {xorb_hash.hex()[:16]}",
        )
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        return None

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
                f"shard upload failed: {message}",
                request_id=resp.request_id,
                url=resp.url,
                server_message=message if terminal.get("type") == "error" else None,
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

    # ------------------------------------------------------------------ downloads

    async def get_reconstruction(
        self, file_hash: MerkleHash, byte_range: tuple[int, int] | None = None
    ) -> Reconstruction:
        """The reconstruction of a file, or of its bytes ``byte_range`` (inclusive)."""
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else None
        hex_hash = file_hash.hex()
        what = f"reconstruction of {hex_hash[:16]}"
        for version in (2, 1) if self.use_reconstruction_v2 else (1,):
            resp = await self.http.send(
                "GET",
                self.url(f"/v{version}/reconstructions/{hex_hash}"),
                what=what,
                headers=headers,
            )
            if version == 2 and resp.status in (404, 501):
                continue  # no v2 endpoint, or an unknown file: v1 tells which
            raise_for_status(resp, what, ok=(200,))
            if version == 1 and self.use_reconstruction_v2:
                self.use_reconstruction_v2 = False  # v2 is missing here: do not ask again
            return parse_reconstruction(resp.body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def fetch_xorb_range(self, url: str, byte_start: int, byte_end: int) -> bytes:
        """Bytes ``[byte_start, byte_end]`` of a xorb from its presigned URL."""
        resp = await self._fetch(url, f"bytes={byte_start}-{byte_end}")
        expected = byte_end - byte_start + 1
        if len(resp.body) != expected:
            raise _short_body(resp, f"{len(resp.body)} bytes, {expected} requested")
        return resp.body

    async def open_xorb_range(
        self, url: str, byte_start: int, byte_end: int, *, http: HttpClient | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes ``[byte_start, byte_end]`` as blocks, as they arrive (use ``aclosing``).
        A broken connection mid-body raises :class:`XorbBodyInterrupted`; a body of the wrong
        length :class:`XetResponseError`. ``http``: another client for this request (e.g. one
        whose transport reads bodies in a worker, see :mod:`.pool_fetch`)."""
        what = "xorb fetch"
        resp = await (http or self.http).send_stream(
            "GET",
            url,
            what=what,
            headers={"Range": f"bytes={byte_start}-{byte_end}"},
            auth=False,
            external=True,
        )
        if isinstance(resp, Response):
            _check_fetch_status(resp, what, url)
            raise _short_body(resp, f"HTTP {resp.status} without a body stream")
        expected = byte_end - byte_start + 1
        received = 0
        try:
            async for block in resp.aiter_bytes():
                received += len(block)
                if received > expected:
                    raise _short_body(resp, f"more than the {expected} bytes requested")
                yield block
        except TransportError as exc:
            raise XorbBodyInterrupted(
                f"{what}: {exc.detail}", url=url, request_id=resp.request_id
            ) from exc
        finally:
            await resp.aclose()
        if received != expected:
            raise XorbBodyInterrupted(
                f"{what}: body ended after {received} of {expected} bytes",
                url=url,
                request_id=resp.request_id,
            )

    async def _fetch(self, url: str, range_header: str) -> Response:
        what = "xorb fetch"
        resp = await self.http.send(
            "GET", url, what=what, headers={"Range": range_header}, auth=False, external=True
        )
        _check_fetch_status(resp, what, url)
        return resp


def _check_fetch_status(resp: Response, what: str, url: str) -> None:
    if resp.status == 403:
        raise PresignedUrlRejected(
            f"{what}: the presigned URL was refused",
            status=403,
            request_id=resp.request_id,
            url=url,
        )
    raise_for_status(resp, what, ok=(200, 206))


def _short_body(resp: Response, detail: str) -> XetResponseError:
    return XetResponseError(
        f"xorb fetch: unusable answer ({detail})",
        status=resp.status,
        request_id=resp.request_id,
        url=resp.url or None,
    )


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


__all__ = [
    "MAX_GRANT_ATTEMPTS",
    "CasClient",
    "PresignedUrlRejected",
    "ShardUploadResult",
    "XorbBodyInterrupted",
    "XorbUploadResult",
]
