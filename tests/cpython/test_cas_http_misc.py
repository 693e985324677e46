"""Browser support and operations: CORS, static files with cross-origin isolation, admin API,
fault injection knobs, the CLI, restarts."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from tests.cpython._cas_helpers import (  # noqa: F401 (the fixtures)
    client_fixture,
    server_fixture,
    upload_xorbs,
)
from tests.plugins.cas_server import build_upload, cas_client
from tests.plugins.cas_server import rand_bytes as rand

if TYPE_CHECKING:
    from tests.plugins.cas_server import CasServer


# ---------------------------------------------------------------------------- browser support
def test_cors(server: CasServer) -> None:
    origin = "http://localhost:9999"
    r = httpx.options(
        f"{server.url}/v2/reconstructions/{'0' * 64}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,range,x-xet-session-id",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    allowed = r.headers["access-control-allow-headers"].lower()
    assert all(h in allowed for h in ("authorization", "range", "x-xet-session-id"))
    assert "PUT" in r.headers["access-control-allow-methods"]
    r = httpx.get(f"{server.url}/v2/reconstructions/{'0' * 64}", headers={"Origin": origin})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == "*"
    exposed = r.headers["access-control-expose-headers"].lower()
    assert "content-range" in exposed and "x-request-id" in exposed
    assert r.headers["cross-origin-resource-policy"] == "cross-origin"
    assert re.fullmatch(r"[0-9a-f]{16}", r.headers["x-request-id"])


def test_static_web_dir(cas_server_factory, tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "pyodide").mkdir(parents=True)
    files = {
        "index.html": ("text/html", b"<html>demo</html>"),
        "pyodide/pyodide.asm.wasm": ("application/wasm", b"\0asm\1\0\0\0"),
        "pyodide/pyodide.mjs": ("text/javascript", b"export {}"),
        "main.js": ("text/javascript", b"1"),
        "pyodide/pyodide-lock.json": ("application/json", b"{}"),
        "pyodide/xet_pyodide-0.1.0-py3-none-any.whl": ("application/zip", b"PK"),
        "pyodide/python_stdlib.zip": ("application/zip", b"PK"),
    }
    for name, (_, content) in files.items():
        (web / name).write_bytes(content)
    (tmp_path / "secret.txt").write_text("nope")
    server = cas_server_factory(web=web)
    for name, (mime, content) in files.items():
        r = httpx.get(f"{server.url}/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].split(";")[0] == mime, name
        assert r.content == content
        assert r.headers["cross-origin-opener-policy"] == "same-origin"
        assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    assert httpx.get(f"{server.url}/").text == "<html>demo</html>"
    for evil in (
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/pyodide/..%2f..%2fsecret.txt",
        "//etc/passwd",
    ):
        r = httpx.get(server.url + evil)
        assert r.status_code == 404 and "nope" not in r.text, evil
    # the API still answers beside the static files
    assert httpx.get(f"{server.url}/_admin/health").json() == {"ok": True}
    assert httpx.get(f"{server.url}/v1/reconstructions/{'0' * 64}").status_code == 401


# ---------------------------------------------------------------------------- admin
def test_admin_api(server: CasServer, client: httpx.Client) -> None:
    assert httpx.get(f"{server.url}/_admin/stats").status_code == 401
    client.get(f"/v1/reconstructions/{'0' * 64}")
    log = server.request_log()
    entry = next(e for e in log if e["endpoint"] == "reconstruction_v1")
    assert entry["status"] == 404 and entry["path"].startswith("/v1/reconstructions/")
    assert set(entry) >= {"ts", "request_id", "method", "duration_ms", "bytes_in", "bytes_out"}
    cfg = server.set_faults(
        seed=3, endpoints={"chunks": {"error_rate": 1.0, "status": 429, "retry_after": 7}}
    )
    assert cfg["endpoints"]["chunks"]["status"] == 429
    r = client.get(f"/v1/chunks/default/{'0' * 64}")
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    r = httpx.post(
        f"{server.url}/_admin/faults",
        json={"endpoints": {"nope": {}}},
        headers=server.token_headers,
    )
    assert r.status_code == 400
    r = httpx.post(
        f"{server.url}/_admin/faults",
        json={"endpoints": {"*": {"error_rate": 2}}},
        headers=server.token_headers,
    )
    assert r.status_code == 400
    server.set_faults(endpoints={"*": {"error_rate": 1.0}})
    assert server.stats()["faults_injected"] >= 1  # the admin API is never faulted
    assert client.get(f"/v1/chunks/default/{'0' * 64}").status_code == 503
    server.set_faults()
    assert client.get(f"/v1/chunks/default/{'0' * 64}").status_code == 404
    server.reset_stats()
    stats = server.stats()
    # only the reset call itself (recorded once it has answered) remains
    assert stats["requests"] == {"admin": 1} and stats["xorb_bytes_received"] == 0
    assert [e["path"] for e in server.request_log()] == ["/_admin/reset-stats", "/_admin/stats"]


def test_latency_fault(server: CasServer, client: httpx.Client) -> None:
    server.set_faults(endpoints={"reconstruction_v1": {"latency_ms": 300}})
    t = time.monotonic()
    client.get(f"/v1/reconstructions/{'0' * 64}")
    assert time.monotonic() - t >= 0.3


# ---------------------------------------------------------------------------- CLI
def test_cli_refuses_bad_arguments(tmp_path: Path) -> None:
    import subprocess
    import sys

    from xet_cas_server.launcher import child_pythonpath

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": child_pythonpath()}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "xet_cas_server", "--data", str(tmp_path / "d"), *args]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)

    r = run()
    assert r.returncode == 2 and "dev-secret" in r.stderr and r.stdout == ""
    r = run("--dev-secret", "s", "--web", str(tmp_path / "missing"))
    assert r.returncode == 2 and "not a directory" in r.stderr
    r = run("--dev-secret", "s", "--disable", "v3-everything")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run("--dev-secret", "s", "--faults", '{"endpoints": {"nope": {}}}')
    assert r.returncode != 0 and "unknown endpoint" in r.stderr


def test_restart_keeps_tokens_and_data(cas_server_factory) -> None:
    server = cas_server_factory()
    up = build_upload([rand(70_000, 40)])
    with cas_client(server) as client:
        upload_xorbs(client, up.xorbs)
        assert client.post("/v1/shards", content=up.shard).status_code == 200
        server.restart()
        r = client.head(f"/v1/files/{up.file_hashes[0]}")  # the same token still works
        assert r.status_code == 200 and r.headers["content-length"] == "70000"
