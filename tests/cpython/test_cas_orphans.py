"""The CAS server's grace period for accepted xorbs that no shard references (resumable
uploads rely on it): kept while young, collected once older than ``--orphan-xorb-grace``
(at start-up, or by ``POST /_admin/gc``); a xorb any stored shard references is never
collected."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.plugins.cas_server import build_upload, cas_client, rand_bytes


def _xorb_rows(server) -> set[str]:
    db = sqlite3.connect(server.data_dir / "index.sqlite3")
    try:
        return {r[0] for r in db.execute("SELECT hash FROM xorbs")}
    finally:
        db.close()


def test_orphan_xorbs_kept_for_the_grace_period(cas_server_factory) -> None:
    server = cas_server_factory(orphan_xorb_grace=3600)
    registered = build_upload([rand_bytes(300_000, 1)])
    orphan = build_upload([rand_bytes(200_000, 2)])
    with cas_client(server) as client:
        for x in registered.xorbs + orphan.xorbs:
            assert client.post(f"/v1/xorbs/default/{x.hash}", content=x.body).status_code == 200
        assert client.post("/v1/shards", content=registered.shard).status_code == 200
        # young orphan: a restart (start-up collection) and a default gc keep it
        server.restart()
        assert server.gc() == 0
        assert client.head(f"/v1/xorbs/default/{orphan.xorbs[0].hash}").status_code == 200
        # past the grace period: collected; the referenced xorb stays
        assert server.gc(grace=0) == 1
        assert client.head(f"/v1/xorbs/default/{orphan.xorbs[0].hash}").status_code == 404
        assert client.head(f"/v1/xorbs/default/{registered.xorbs[0].hash}").status_code == 200
        assert _xorb_rows(server) == {registered.xorbs[0].hash.hex()}
        files = list((server.data_dir / "xorbs").rglob("*"))
        assert sum(p.is_file() for p in files) == 1
        # the file it held still downloads
        r = client.get(f"/v1/reconstructions/{registered.file_hashes[0]}")
        assert r.status_code == 200
        # a collected xorb can be uploaded again and used
        x = orphan.xorbs[0]
        assert client.post(f"/v1/xorbs/default/{x.hash}", content=x.body).status_code == 200
        assert client.post("/v1/shards", content=orphan.shard).status_code == 200
        assert server.gc(grace=0) == 0


def test_orphans_collected_at_start_up(cas_server_factory) -> None:
    server = cas_server_factory(orphan_xorb_grace=0.5)
    orphan = build_upload([rand_bytes(100_000, 3)])
    with cas_client(server) as client:
        x = orphan.xorbs[0]
        assert client.post(f"/v1/xorbs/default/{x.hash}", content=x.body).status_code == 200
    time.sleep(1.0)
    server.restart()
    assert _xorb_rows(server) == set()
    assert server.stats()["store"]["dedup_chunks"] == 0


def test_data_dir_from_before_refs_keeps_every_xorb(cas_server_factory, tmp_path: Path) -> None:
    """A data dir written by a server without the xorb_refs table: its xorbs all count as
    referenced (nothing an older server accepted is ever collected)."""
    server = cas_server_factory()
    orphan = build_upload([rand_bytes(100_000, 4)])
    with cas_client(server) as client:
        x = orphan.xorbs[0]
        assert client.post(f"/v1/xorbs/default/{x.hash}", content=x.body).status_code == 200
    server.stop()
    db = sqlite3.connect(server.data_dir / "index.sqlite3")
    db.execute("DROP TABLE xorb_refs")
    db.commit()
    db.close()
    server.restart()
    assert server.gc(grace=0) == 0
    assert _xorb_rows(server) == {orphan.xorbs[0].hash.hex()}
