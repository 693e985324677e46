"""Helpers of the Hub tests: the real clients in child processes, Hub tokens, raw requests.

* :func:`run_python_client` — huggingface_hub 2.4.0 + hf_xet (``_hub_driver.py``) with
  ``HF_ENDPOINT`` on the server; :func:`run_node_client` — @huggingface/hub 2.17.5 in Node
  (``tests/node/hfjs_client.mjs``). Both get an environment where nothing but 127.0.0.1 can be
  reached: every proxy variable points at a closed local port and ``NO_PROXY`` exempts only
  loopback, so a request meant for a real Hub fails instead of leaving the machine.
* :func:`mint_token` — a Hub token for a user from the admin API (the dev secret).
* :func:`three_files` — the files the Hub client tests commit.
* :func:`hub_client` — an ``httpx.Client`` on the server with a Hub token, for raw requests;
  :func:`create`, :func:`commit` (with :func:`inline` / :func:`lfs` operations), :func:`head`,
  :func:`xet_upload` (xorbs + shard through the repository's Xet token),
  :func:`assert_hub_error` (status, ``X-Error-Code`` and the ``{"error": …}`` body).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.plugins.cas_server import CasServer, child_pythonpath

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "cpython" / "_hub_driver.py"
NODE_CLIENT = REPO / "tests" / "node" / "hfjs_client.mjs"
#: A local port nothing listens on: the "proxy" of every request that is not for 127.0.0.1.
DEAD_PROXY = "http://127.0.0.1:9"


def unique(prefix: str) -> str:
    """A fresh repository name (tests share the session's server)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def binary(n: int, seed: int) -> bytes:
    """Random bytes starting with NUL: binary, so the Hub sends them to Xet whatever ``n``."""
    return b"\0" + random.Random(seed).randbytes(n - 1)


def three_files(seed: int) -> dict[str, bytes]:
    """What the Hub client tests commit: one small text file (inline in the commit) and two
    binary ones sharing their first 2.5 MiB (through Xet; the second deduplicates)."""
    big = binary(3 * (1 << 20) + 17, seed)
    return {
        "README.md": b"# three files\n\none commit\n",
        "w/a.bin": big,
        "w/b.bin": big[: 5 * (1 << 20) // 2] + binary((1 << 20) // 2, seed + 1),
    }


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def offline_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("HF_", "HUGGING"))}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = DEAD_PROXY
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return {**env, **extra}


def run_python_client(
    server: CasServer,
    ops: list[dict[str, Any]],
    home: Path,
    token: str | None = None,
    *,
    xet: bool = True,
) -> list[Any]:
    """Run huggingface_hub operations (see ``_hub_driver.py``) in a child; their results."""
    extra = {
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYTHONPATH": child_pythonpath(),
    }
    if token:
        extra["HF_TOKEN"] = token
    if not xet:
        extra["HF_HUB_DISABLE_XET"] = "1"
    return _child([sys.executable, str(DRIVER)], ops, offline_env(extra))


def run_node_client(server: CasServer, ops: list[dict[str, Any]], token: str) -> list[Any]:
    """Run @huggingface/hub operations (see ``tests/node/hfjs_ops.mjs``) in Node."""
    node = shutil.which("node")
    assert node is not None, "node is not installed (scripts/setup.sh installs it)"
    spec = {"hubUrl": server.url, "accessToken": token, "ops": ops}
    return _child([node, str(NODE_CLIENT)], spec, offline_env({}), cwd=REPO)


def _child(argv: list[str], payload: Any, env: dict[str, str], cwd: Path | None = None) -> Any:
    proc = subprocess.run(
        argv, input=json.dumps(payload), capture_output=True, text=True, env=env, timeout=600,
        cwd=cwd,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"{argv[-1]} exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def mint_token(server: CasServer, user: str, role: str = "write") -> str:
    r = httpx.post(
        f"{server.url}/api/_admin/tokens",
        json={"user": user, "role": role},
        headers=server.token_headers,
    )
    assert r.status_code == 200, r.text
    return r.json()["token"]


def hub_client(server: CasServer, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def ndjson(header: dict[str, Any], *ops: tuple[str, dict[str, Any]]) -> bytes:
    lines = [{"key": "header", "value": header}] + [{"key": k, "value": v} for k, v in ops]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def assert_ok(results: list[Any]) -> list[Any]:
    errors = [r for r in results if isinstance(r, dict) and "error" in r]
    assert not errors, errors
    return results


def create(server: CasServer, token: str, name: str, private: bool = False, **extra: Any) -> str:
    ns, _, repo = name.partition("/")
    with hub_client(server, token) as c:
        r = c.post(
            "/api/repos/create",
            json={"name": repo, "organization": ns, "private": private, **extra},
        )
    assert r.status_code == 200, r.text
    return name


def commit(
    c: httpx.Client,
    repo: str,
    *ops: tuple[str, dict[str, Any]],
    branch: str = "main",
    parent: str | None = None,
    kind: str = "models",
    **params: Any,
) -> httpx.Response:
    header: dict[str, Any] = {"summary": "test commit", "description": "body"}
    if parent:
        header["parentCommit"] = parent
    return c.post(
        f"/api/{kind}/{repo}/commit/{branch.replace('/', '%2F')}",
        content=ndjson(header, *ops),
        headers={"Content-Type": "application/x-ndjson"},
        params=params,
    )


def inline(path: str, data: bytes) -> tuple[str, dict[str, Any]]:
    return "file", {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}


def lfs(path: str, data: bytes) -> tuple[str, dict[str, Any]]:
    return "lfsFile", {"path": path, "algo": "sha256", "oid": sha(data), "size": len(data)}


def head(c: httpx.Client, repo: str) -> str:
    r = c.get(f"/api/models/{repo}/revision/main")
    assert r.status_code == 200, r.text
    return r.json()["sha"]


def xet_upload(c: httpx.Client, repo: str, shard: bytes, xorbs: list[Any]) -> None:
    """Upload xorbs and a shard to the CAS with the repository's Xet write token."""
    r = c.get(f"/api/models/{repo}/xet-write-token/main")
    assert r.status_code == 200, r.text
    cas = {"Authorization": f"Bearer {r.json()['accessToken']}"}
    for x in xorbs:
        assert (
            httpx.post(
                f"{r.json()['casUrl']}/v1/xorbs/default/{x.hash}", content=x.body, headers=cas
            ).status_code
            == 200
        )
    assert httpx.post(f"{r.json()['casUrl']}/v1/shards", content=shard, headers=cas).json()


def assert_hub_error(r: httpx.Response, status: int, code: str | None = None) -> str:
    assert r.status_code == status, r.text
    assert r.headers.get("x-error-code") == code
    if r.request.method == "HEAD":
        return r.headers["x-error-message"]
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert r.headers["x-error-message"]
    return body["error"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
