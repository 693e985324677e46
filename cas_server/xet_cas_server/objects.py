"""Content-addressed object files: atomic, durable writes and ranged reads.

Layout under the data directory::

    xorbs/<h[:2]>/<h>.xorb     chunk records + rebuilt V1 footer (docs/protocol.md §4.4)
    shards/<h[:2]>/<h>.shard   shard bodies as uploaded (validated)
    tmp/                       files being written (emptied at start-up)
    staging/                   grant PUT bodies waiting for their commit (emptied at start-up)

A write goes ``tmp/`` → ``fsync`` → ``rename`` into place → ``fsync`` of the directory, so a
reader (or a restart after ``kill -9``) sees either nothing or the complete file. An object file
only *counts* once its row is committed in the index; files without a row are leftovers of a
crash between rename and commit and are deleted at start-up (they were never acknowledged).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

KINDS = {"xorb": ("xorbs", ".xorb"), "shard": ("shards", ".shard")}


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ObjectFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.staging = root / "staging"
        for d in (self.tmp, self.staging, *(root / sub for sub, _ in KINDS.values())):
            d.mkdir(parents=True, exist_ok=True)

    def path(self, kind: str, hex_hash: str) -> Path:
        sub, ext = KINDS[kind]
        return self.root / sub / hex_hash[:2] / f"{hex_hash}{ext}"

    def write_atomic(
        self, kind: str, hex_hash: str, *parts: bytes | bytearray | memoryview
    ) -> Path:
        """Durably write an object; returns its final path. Replacing an identical object is
        harmless (content-addressed), so concurrent writers of the same hash need no lock."""
        final = self.path(kind, hex_hash)
        tmp = self.tmp / f"{kind}-{hex_hash[:16]}-{secrets.token_hex(6)}"
        try:
            with open(tmp, "wb") as f:
                for part in parts:
                    f.write(part)
                f.flush()
                os.fsync(f.fileno())
            _publish(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return final

    def adopt(self, kind: str, hex_hash: str, staged: Path, tail: bytes = b"") -> Path:
        """Make the file ``staged`` (on this file system, e.g. in ``staging/``), with ``tail``
        appended, the object ``hex_hash``: durably, like :meth:`write_atomic`, without copying
        its bytes again. The staged file is gone afterwards (it *is* the object)."""
        final = self.path(kind, hex_hash)
        with open(staged, "ab") as f:
            f.write(tail)
            f.flush()
            os.fsync(f.fileno())
        _publish(staged, final)
        return final

    def remove(self, kind: str, hex_hash: str) -> None:
        self.path(kind, hex_hash).unlink(missing_ok=True)

    def read_ranges(self, kind: str, hex_hash: str, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Read inclusive byte ranges of one object with a single open()."""
        fd = os.open(self.path(kind, hex_hash), os.O_RDONLY)
        try:
            out = []
            for first, last in ranges:
                data = os.pread(fd, last - first + 1, first)
                if len(data) != last - first + 1:
                    raise OSError(f"short read of {kind} {hex_hash}")
                out.append(data)
            return out
        finally:
            os.close(fd)

    def read_range(self, kind: str, hex_hash: str, offset: int, length: int) -> bytes:
        """``length`` bytes of an object from ``offset`` (one open per call: a streamed
        response holds no descriptor between its reads)."""
        return self.read_ranges(kind, hex_hash, [(offset, offset + length - 1)])[0]

    def iter_hashes(self, kind: str) -> Iterator[str]:
        sub, ext = KINDS[kind]
        for p in (self.root / sub).glob(f"*/*{ext}"):
            yield p.name[: -len(ext)]

    def clear_scratch(self) -> int:
        """Empty tmp/ and staging/ (start-up); returns how many leftovers were removed."""
        n = 0
        for d in (self.tmp, self.staging):
            for p in d.iterdir():
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                n += 1
        return n

    def staging_path(self, grant_id: str) -> Path:
        """A new file name for a body PUT to grant ``grant_id`` (each PUT writes its own)."""
        return self.staging / f"grant-{grant_id}.{secrets.token_hex(6)}"

    def drop_staged(self, grant_id: str) -> None:
        """Remove every staged body of grant ``grant_id`` (ids are URL-safe base64: no glob
        characters)."""
        for p in self.staging.glob(f"grant-{grant_id}.*"):
            p.unlink(missing_ok=True)


def _publish(written: Path, final: Path) -> None:
    """Rename the synced file ``written`` to ``final`` durably: a new fan-out directory is
    synced into its parent first, and the rename into its directory afterwards."""
    parent_existed = final.parent.exists()
    final.parent.mkdir(exist_ok=True)
    if not parent_existed:
        fsync_dir(final.parent.parent)
    os.replace(written, final)
    fsync_dir(final.parent)
