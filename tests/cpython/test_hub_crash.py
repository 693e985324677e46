"""``kill -9`` during a Hub commit: the branch keeps its previous head, nothing of the commit
is visible after a restart, and every acknowledged commit is still there."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.cpython._hub_helpers import (
    binary,
    commit,
    create,
    head,
    hub_client,
    inline,
    lfs,
    unique,
    xet_upload,
)
from tests.plugins.cas_server import CasServer, build_upload


def write_transaction_open(db: Path) -> bool:
    """True while another connection holds SQLite's write lock (a transaction in progress)."""
    conn = sqlite3.connect(db, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def history(c: httpx.Client, repo: str) -> list[str]:
    return [h["id"] for h in c.get(f"/api/models/{repo}/commits/main").json()]


def integrity(server: CasServer) -> list[Any]:
    conn = sqlite3.connect(server.data_dir / "index.sqlite3")
    try:
        return conn.execute("PRAGMA foreign_key_check").fetchall() + [
            r for r in conn.execute("PRAGMA integrity_check").fetchall() if r != ("ok",)
        ]
    finally:
        conn.close()


def test_kill9_inside_the_commit_transaction(cas_server_factory: Any) -> None:
    server: CasServer = cas_server_factory()
    repo = create(server, server.dev_secret, f"org/{unique('crash')}")
    kept, lost = binary(400_000, 71), binary(400_000, 72)
    with hub_client(server, server.dev_secret) as c:
        up = build_upload([kept, lost])
        xet_upload(c, repo, up.shard, up.xorbs)
        r = commit(c, repo, inline("a.txt", b"acknowledged"), lfs("kept.bin", kept))
        assert r.status_code == 200
        acked = r.json()["commitOid"]
        before = c.get(f"/api/models/{repo}/tree/main", params={"recursive": "true"}).json()

    # the next commit sleeps inside its transaction, after every write, before COMMIT
    server.set_faults(endpoints={"hub_commit": {"commit_delay_ms": 60_000}})
    outcome: list[Any] = []

    def doomed() -> None:
        with hub_client(server, server.dev_secret) as c2:
            try:
                outcome.append(
                    commit(
                        c2,
                        repo,
                        ("deletedFile", {"path": "a.txt"}),
                        inline("b.txt", b"never"),
                        lfs("lost.bin", lost),
                    )
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=doomed)
    thread.start()
    deadline = time.monotonic() + 60
    while not write_transaction_open(server.data_dir / "index.sqlite3"):
        assert time.monotonic() < deadline, "the commit never opened its transaction"
        time.sleep(0.02)
    server.kill9()
    thread.join(30)
    assert isinstance(outcome[0], httpx.HTTPError)  # never acknowledged

    server.restart()
    assert integrity(server) == []
    with hub_client(server, server.dev_secret) as c:
        assert head(c, repo) == acked
        assert len(history(c, repo)) == 2
        after = c.get(f"/api/models/{repo}/tree/main", params={"recursive": "true"}).json()
        assert after == before
        assert c.get(f"/{repo}/resolve/main/a.txt").content == b"acknowledged"
        assert c.get(f"/{repo}/resolve/main/kept.bin").content == kept
        assert c.get(f"/{repo}/resolve/main/b.txt").status_code == 404
        # the branch is usable: the next commit builds on the acknowledged head
        r = commit(c, repo, inline("c.txt", b"after"), parent=acked)
        assert r.status_code == 200
        assert history(c, repo)[:2] == [r.json()["commitOid"], acked]


def test_kill9_during_a_stream_of_commits_loses_nothing_acknowledged(
    cas_server_factory: Any,
) -> None:
    server: CasServer = cas_server_factory(
        faults={"endpoints": {"hub_commit": {"commit_delay_ms": 40}}}
    )
    repo = create(server, server.dev_secret, f"org/{unique('stream')}")
    acked: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        with hub_client(server, server.dev_secret) as c:
            for i in range(1000):
                if stop.is_set():
                    return
                try:
                    r = commit(c, repo, inline(f"f{i % 7}.txt", b"%d" % i))
                except httpx.HTTPError:
                    return
                if r.status_code != 200:
                    return
                acked.append(r.json()["commitOid"])

    thread = threading.Thread(target=writer)
    thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < 5 or not write_transaction_open(server.data_dir / "index.sqlite3"):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    server.kill9()
    stop.set()
    thread.join(30)

    server.restart()
    assert integrity(server) == []
    with hub_client(server, server.dev_secret) as c:
        chain = history(c, repo)[:-1]  # newest first, without the repository's first commit
    # every acknowledged commit, in order; at most one more (durable, its answer lost)
    extra = len(chain) - len(acked)
    assert extra in (0, 1)
    assert chain[extra:] == acked[::-1]
