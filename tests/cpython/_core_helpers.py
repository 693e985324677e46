"""Shared helpers of the protocol-core tests: conformance vectors, hf_xet oracles, a minimal
upload planner built from the core (the reference for "what we would upload")."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType

from xet_pyodide.core.chunking import chunk_data
from xet_pyodide.core.hashes import MerkleHash, hash_chunks
from xet_pyodide.core.shard import Shard, XorbEntry
from xet_pyodide.core.shard_model import FileEntry
from xet_pyodide.core.terms import ChunkLocation, build_file_entry
from xet_pyodide.core.xorb import Scheme, Xorb, XorbBuilder

REPO = Path(__file__).resolve().parents[2]
#: The conformance vectors, kept in the repository (see tests/vectors/README.md).
VECTORS = REPO / "tests" / "vectors"


# --------------------------------------------------------------------------- vectors


def vector_file(name: str) -> Path:
    """A file of tests/vectors; a missing one is an error (never a skip): the vectors are
    part of the repository."""
    path = VECTORS / name
    if not path.is_file():
        raise FileNotFoundError(f"conformance vector file missing from the repository: {path}")
    return path


@cache
def vectors() -> dict:
    return json.loads(vector_file("expected.json").read_text())


@cache
def make_inputs() -> ModuleType:
    path = vector_file("make_inputs.py")
    spec = importlib.util.spec_from_file_location("xet_make_inputs", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def vector_input(name: str) -> bytes:
    if name == "lowentropy_2MB":
        # make_inputs re-seeds random.Random(12) for every byte (~12 s), so the case is one
        # repeated byte; build it directly (the sha256 in expected.json guards this shortcut).
        return bytes([random.Random(12).choice(b"ab")]) * 2_000_000
    return make_inputs().build(name)


# --------------------------------------------------------------------------- generated inputs


def random_input(rng: random.Random, size: int, kind: str) -> bytes:
    """Inputs of the families the property tests mix."""
    if kind == "random":
        return rng.randbytes(size)
    if kind == "constant":
        return bytes([rng.randrange(256)]) * size
    if kind == "lowentropy":
        alphabet = rng.randbytes(rng.randint(2, 4))
        table = bytes(alphabet[b % len(alphabet)] for b in range(256))
        return rng.randbytes(size).translate(table)
    if kind == "floats":
        scale = rng.choice([0.01, 1.0, 1000.0])
        n = size // 4 + 1
        return struct.pack(f"<{n}f", *(rng.gauss(0.0, scale) for _ in range(n)))[:size]
    if kind == "repeats":
        block = rng.randbytes(rng.randint(1, 200_000))
        out = bytearray()
        while len(out) < size:
            out += block if rng.random() < 0.7 else rng.randbytes(rng.randint(1, 50_000))
        return bytes(out[:size])
    if kind == "text":
        words = [rng.randbytes(rng.randint(1, 8)).hex() for _ in range(200)]
        out = bytearray()
        while len(out) < size:
            out += rng.choice(words).encode() + b" "
        return bytes(out[:size])
    raise ValueError(kind)


INPUT_KINDS = ("random", "constant", "lowentropy", "floats", "repeats", "text")


# --------------------------------------------------------------------------- hf_xet oracles


def hf_hash_files(paths: list[Path]) -> list[tuple[str, int]]:
    import hf_xet

    return [(info.hash, info.file_size) for info in hf_xet.hash_files([str(p) for p in paths])]


_UPLOAD_SCRIPT = """
import sys, hf_xet
dest, files = sys.argv[1], sys.argv[2:]
with hf_xet.XetSession().new_upload_commit(endpoint="local://" + dest) as commit:
    for path in files:
        commit.start_upload_file(path)
"""


def hf_upload(dest: Path, files: list[Path], home: Path) -> None:
    """Upload ``files`` in one hf_xet commit to a ``local://`` endpoint (in a subprocess, with
    its caches under ``home``)."""
    env = {**os.environ, "HF_HOME": str(home), "HF_XET_CACHE": str(home / "xet")}
    subprocess.run(
        [sys.executable, "-c", _UPLOAD_SCRIPT, str(dest), *map(str, files)],
        check=True,
        env=env,
        timeout=600,
    )


def stored_xorbs(dest: Path) -> dict[MerkleHash, bytes]:
    """Xorbs hf_xet's local backend stored (``default.<hash>`` files)."""
    out = {}
    for path in (dest / "xet" / "xorbs" / "xorbs").glob("default.*"):
        if path.suffix == ".tagset":
            continue
        out[MerkleHash.from_hex(path.name.split(".", 1)[1])] = path.read_bytes()
    return out


def stored_shards(dest: Path) -> list[tuple[Path, bytes]]:
    """Shards hf_xet stored (server copy) and cached (with lookup tables)."""
    paths = sorted((dest / "xet" / "xorbs" / "shards").glob("*.mdb"))
    paths += sorted((dest / "xet" / "shard-cache").glob("*.mdb"))
    return [(p, p.read_bytes()) for p in paths]


# --------------------------------------------------------------------------- our planner


def pack_xorbs(
    data: bytes, scheme: Scheme | None = None, per_xorb: int | None = None
) -> list[Xorb]:
    """``data`` chunked and packed into xorbs in order: a xorb is cut when full, or after
    ``per_xorb`` chunks (several small xorbs from little data)."""
    out, builder = [], XorbBuilder(scheme)
    for chunk in chunk_data(data):
        if len(builder) == per_xorb or not builder.can_add(len(chunk)):
            out.append(builder.finish())
            builder = XorbBuilder(scheme)
        builder.add(chunk)
    if len(builder):
        out.append(builder.finish())
    return out


@dataclass
class PlannedUpload:
    """What a simple sequential client built from the core uploads for some files."""

    xorbs: list[Xorb] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)

    def shard(self) -> Shard:
        entries = [XorbEntry.from_chunks(x.hash, x.chunk_hashes, x.chunk_sizes) for x in self.xorbs]
        return Shard(files=list(self.files), xorbs=entries)


def plan_upload(contents: list[bytes]) -> PlannedUpload:
    """Chunk, dedup within the session, pack xorbs in file order, build file entries.

    Mirrors hf_xet for a single sequential producer: new chunks go to the open xorb (cut when
    full), a chunk seen earlier in the session is referenced where it was first stored.
    """
    plan = PlannedUpload()
    builder = XorbBuilder()
    located: dict[MerkleHash, ChunkLocation | tuple[None, int]] = {}
    per_file: list[tuple[list[MerkleHash], list[int]]] = []

    def close_xorb() -> None:
        nonlocal builder
        if len(builder):
            xorb = builder.finish()
            plan.xorbs.append(xorb)
            for h, loc in list(located.items()):
                if loc[0] is None:
                    located[h] = (xorb.hash, loc[1])
            builder = XorbBuilder()

    for data in contents:
        chunks = chunk_data(data)
        hashes = hash_chunks(chunks) if chunks else []
        builder.start_file_segment()
        for chunk, h in zip(chunks, hashes, strict=True):
            if h in located:
                continue
            if not builder.can_add(len(chunk)):
                close_xorb()
            located[h] = (None, builder.add(chunk, h))
        per_file.append((hashes, [len(c) for c in chunks]))
    close_xorb()
    for data, (hashes, sizes) in zip(contents, per_file, strict=True):
        locations = [located[h] for h in hashes]
        sha = hashlib.sha256(data).digest() if data else bytes(32)
        plan.files.append(build_file_entry(hashes, sizes, locations, sha))  # type: ignore[arg-type]
    return plan
