"""pytest plugin: the local Xet CAS server (``xet_cas_server``) as a real subprocess.

Register it with ``pytest_plugins = ["tests.plugins.cas_server"]`` in ``tests/conftest.py``.

Fixtures
--------
``cas_server`` (session scope)
    One server for the whole run, default options, data in a session temp dir. Tests that
    share it must not assume empty stats: call ``reset_stats()`` first, or compare deltas.
``cas_server_factory`` (function scope)
    ``cas_server_factory(**options) -> CasServer``; every server it started is stopped at the
    end of the test. Options (all optional):

    ``disable=["v2-shards", "v2-reconstructions", "grants", "dedup"]`` (those endpoints answer
    404 to exercise client fallbacks), ``faults={...}`` (initial fault config, see
    ``xet_cas_server.faults``), ``web=Path`` (serve a directory at ``/``), ``token_ttl``,
    ``dedup_key_ttl``, ``signed_url_ttl``, ``grant_ttl``, ``max_xorb_bytes``,
    ``max_shard_bytes``, ``max_json_bytes``, ``max_staging_bytes``, ``max_header_bytes``,
    ``header_timeout``, ``body_timeout``, ``public_url``, ``heartbeat`` (seconds), ``data_dir``
    (reuse a directory), ``dev_secret``, ``extra_args=[...]``.

``CasServer`` handle (``xet_cas_server.launcher.ServerProcess``)
----------------------------------------------------------------
``.url`` (``http://127.0.0.1:PORT``), ``.port``, ``.dev_secret``, ``.data_dir``, ``.hub_line``
(the ``HF_ENDPOINT=… HF_TOKEN=…`` line printed at start);
``.token(scope="write", ttl=3600, repo="models/test/repo") -> (token, exp)`` through the
Hub-shaped token endpoint (a token reads only the files registered in its repository);
``.token_url(scope="write", ttl=None, repo=...) -> str`` and ``.token_headers`` (for hf_xet's
``token_refresh_url`` / ``token_refresh_headers``); ``.stats() -> dict`` (counters such as
``xorb_bytes_received``, ``xorb_bytes_served``, ``shard_bytes_received``, ``dedup_queries``,
``dedup_hits``, plus ``requests``/``statuses`` per endpoint and ``store`` row counts);
``.reset_stats()``; ``.set_faults(**cfg)`` (replaces the fault config; no arguments = all
off), ``.request_log(limit=None) -> list[dict]``; ``.kill9()`` (SIGKILL, no cleanup),
``.restart()`` (same port, data dir and secret; waits until ready), ``.stop()`` (SIGTERM);
``.log_path`` (the server's JSON-lines stderr).

hf_xet helpers (each runs hf_xet in a child process, see ``xet_cas_server.hfxet_driver``):
``.hf_upload(paths, hf_home=DIR) -> dict`` (``files`` with hash/size/sha256, ``dedup``
metrics), ``.hf_download(items, hf_home=DIR)`` with items ``{"hash", "size", "dest"}``,
``.hf_stream(hash, size, dest, hf_home=DIR, start=None, end=None)``. All take ``config=``
(``XetConfig`` dotted keys, e.g. ``{"client.enable_multirange_fetching": True}``),
``refresh=True`` (give hf_xet the token endpoint as token_refresh_url), ``token_ttl=`` (seeded
token lifetime; ``None`` = no seeded token), ``repo=`` (the tokens' repository) and ``env=``
(extra environment, e.g. ``HF_XET_*``).
``hf_home`` is hf_xet's cache dir: a fresh one means an empty shard cache (no local dedup).

Raw objects
-----------
``build_upload(files, chunk_size=65536) -> RawUpload`` builds valid xorbs (one per file) and
the upload-form shard registering the files, with the protocol core, for tests that speak HTTP
themselves. Chunks are cut at a fixed size (the server does not check CDC boundaries), which
keeps this fast; ``RawUpload.xorbs`` (core ``Xorb`` objects: ``.hash``, ``.body``),
``.shard`` (bytes), ``.file_hashes`` (xet hex), ``.entries`` (core ``FileEntry``), ``.shard_model``.

Small helpers: ``cas_client(server, scope="write") -> httpx.Client`` (base URL + bearer token),
``stored_state(server) -> {"rows": {...}, "files": [...]}`` (index row counts and every object /
scratch file: compare before and after a rejected request to prove nothing was stored),
``rand_bytes(n, seed)``.
"""

from __future__ import annotations

import random
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "cas_server") not in sys.path:  # works without `pip install -e cas_server` too
    sys.path.append(str(REPO / "cas_server"))

from xet_cas_server.launcher import ServerProcess as CasServer  # noqa: E402
from xet_cas_server.launcher import child_pythonpath  # noqa: E402

__all__ = [
    "CasServer",
    "RawUpload",
    "build_upload",
    "cas_client",
    "cas_server",
    "cas_server_factory",
    "child_pythonpath",
    "rand_bytes",
    "stored_state",
]


def rand_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def cas_client(server: CasServer, scope: str = "write") -> httpx.Client:
    token, _ = server.token(scope)
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def stored_state(server: CasServer) -> dict[str, Any]:
    """Everything persistent: index row counts, object files and scratch files."""
    root = server.data_dir
    db = sqlite3.connect(root / "index.sqlite3")
    try:
        tables = ("xorbs", "shards", "files", "dedup_chunks")
        rows = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}
    finally:
        db.close()
    files = sorted(
        str(p.relative_to(root))
        for d in ("xorbs", "shards", "tmp", "staging")
        for p in (root / d).rglob("*")
        if p.is_file()
    )
    return {"rows": rows, "files": files}


@dataclass
class RawUpload:
    xorbs: list[Any]
    shard: bytes
    file_hashes: list[str]
    entries: list[Any]
    shard_model: Any


def build_upload(files: list[bytes], chunk_size: int = 65536) -> RawUpload:
    """Valid xorbs + shard for ``files`` (see module docstring)."""
    import hashlib

    from xet_pyodide.core.hashes import file_hash, hash_chunks, verification_hash
    from xet_pyodide.core.shard import serialize_shard
    from xet_pyodide.core.shard_model import FileEntry, FileTerm, Shard, XorbEntry
    from xet_pyodide.core.xorb import XorbBuilder

    xorbs, entries, cas = [], [], []
    for data in files:
        chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        hashes = hash_chunks(chunks) if chunks else []
        terms, verification = [], []
        if chunks:
            builder = XorbBuilder()
            builder.add_chunks(chunks, hashes)
            xorb = builder.finish()
            xorbs.append(xorb)
            cas.append(XorbEntry.from_chunks(xorb.hash, xorb.chunk_hashes, xorb.chunk_sizes))
            terms = [FileTerm(xorb.hash, 0, xorb.num_chunks, len(data))]
            verification = [verification_hash(hashes)]
        fh = file_hash(list(zip(hashes, [len(c) for c in chunks], strict=True)))
        entries.append(FileEntry(fh, terms, verification, hashlib.sha256(data).digest()))
    model = Shard(entries, cas)
    return RawUpload(
        xorbs, serialize_shard(model), [e.file_hash.hex() for e in entries], entries, model
    )


@pytest.fixture(scope="session")
def cas_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CasServer]:
    server = CasServer(tmp_path_factory.mktemp("cas") / "data").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def cas_server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., CasServer]]:
    started: list[CasServer] = []

    def factory(**options: Any) -> CasServer:
        data_dir = options.pop("data_dir", None) or tmp_path_factory.mktemp("cas") / "data"
        server = CasServer(Path(data_dir), **options).start()
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.close()
