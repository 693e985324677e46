"""An in-memory fake CAS (for unit tests of the session logic) and tests of the fake itself.

``FakeCas`` speaks the legacy routes by default (``/v1/xorbs``, ``/v1/shards``) plus the
global-dedup query, validates what it receives with the core parsers (xorb hash recomputed,
shards must only reference stored xorbs) and can rebuild a file from its shard entry, so
tests check uploads byte for byte without a network. End-to-end tests use the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from xet_pyodide.core.hashes import MerkleHash, hmac_hash
from xet_pyodide.core.shard import parse_shard, serialize_shard
from xet_pyodide.core.shard_model import FileEntry, Shard, ShardFooterInfo, XorbChunk, XorbEntry
from xet_pyodide.core.xorb import load_xorb
from xet_pyodide.io.testing import MockRequest, MockTransport, json_response
from xet_pyodide.io.transport import Response


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an aiohttp ``web.Application`` on 127.0.0.1 from a background thread (own loop);
    yields its base URL."""
    from aiohttp import web

    loop = asyncio.new_event_loop()
    ready: Future[str] = Future()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set_result(f"http://127.0.0.1:{port}")
        return runner

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


_XORB = re.compile(r"^/v1/xorbs/default/([0-9a-f]{64})$")
_CHUNK = re.compile(r"^/v1/chunks/default/([0-9a-f]{64})$")


class FakeCas:
    """See module docstring. ``dedup_key`` protects dedup answers (None = plain hashes)."""

    def __init__(self, *, dedup_key: bytes | None = bytes(range(1, 33)), expiry: int = 0) -> None:
        self.xorbs: dict[MerkleHash, tuple[list[MerkleHash], list[int], list[bytes]]] = {}
        self.files: dict[MerkleHash, FileEntry] = {}
        self.shards: list[bytes] = []
        self.xorb_bytes = 0
        self.dedup_key = dedup_key
        self.expiry = expiry
        self.transport = MockTransport(self.handle)
        self.fail_xorbs = False

    # --------------------------------------------------------------- routes

    def handle(self, req: MockRequest) -> Response:
        path = req.path
        if m := _XORB.match(path):
            return self._xorb(MerkleHash.from_hex(m.group(1)), req.body or b"")
        if path == "/v1/shards" and req.method == "POST":
            return self._shard(req.body or b"")
        if m := _CHUNK.match(path):
            return self._dedup(MerkleHash.from_hex(m.group(1)))
        return json_response(404, {"error": "not found"})

    def _xorb(self, expected: MerkleHash, body: bytes) -> Response:
        if self.fail_xorbs:
            return json_response(400, {"error": "refused"})
        xorb, chunks = load_xorb(body, expected)
        inserted = expected not in self.xorbs
        self.xorbs[expected] = (xorb.chunk_hashes, xorb.chunk_sizes, chunks)
        self.xorb_bytes += len(body)
        return json_response(200, {"was_inserted": inserted})

    def _shard(self, body: bytes) -> Response:
        shard = parse_shard(body)
        for entry in shard.xorbs:
            if entry.xorb_hash not in self.xorbs:
                return json_response(400, {"error": f"xorb {entry.xorb_hash} not uploaded"})
            hashes, sizes, _ = self.xorbs[entry.xorb_hash]
            if [c.hash for c in entry.chunks] != hashes or [c.size for c in entry.chunks] != sizes:
                return json_response(400, {"error": "CAS entry does not match the xorb"})
        for f in shard.files:
            for term in f.terms:
                if term.xorb_hash not in self.xorbs:
                    return json_response(400, {"error": f"term xorb {term.xorb_hash} missing"})
            self.files[f.file_hash] = f
        self.shards.append(body)
        return json_response(200, {"result": 1})

    def _dedup(self, chunk: MerkleHash) -> Response:
        for xorb_hash, (hashes, sizes, _) in self.xorbs.items():
            if chunk in hashes:
                key = self.dedup_key
                protected = [hmac_hash(h, key) for h in hashes] if key else hashes
                entry = XorbEntry.from_chunks(xorb_hash, protected, sizes)
                footer = ShardFooterInfo(key or bytes(32), 0, self.expiry)
                body = serialize_shard(Shard([], [entry], footer), with_footer=True)
                return Response(200, {}, body)
        return json_response(404, {"error": "unknown chunk"})

    # --------------------------------------------------------------- checks

    def reconstruct(self, file_hash: str) -> bytes:
        entry = self.files[MerkleHash.from_hex(file_hash)]
        out = bytearray()
        for term in entry.terms:
            _, _, chunks = self.xorbs[term.xorb_hash]
            piece = b"".join(chunks[term.chunk_start : term.chunk_end])
            assert len(piece) == term.unpacked_bytes
            out += piece
        return bytes(out)

    def paths(self) -> list[str]:
        return [r.path for r in self.transport.requests]


def test_fake_cas_rejects_shard_with_missing_xorb() -> None:
    cas = FakeCas()
    entry = XorbEntry(MerkleHash(bytes(range(32))), [XorbChunk(MerkleHash(bytes(32)), 0, 5)])
    resp = cas.handle(
        MockRequest("POST", "http://cas/v1/shards", {}, serialize_shard(Shard([], [entry])))
    )
    assert resp.status == 400
    assert "not uploaded" in json.loads(resp.body)["error"]
