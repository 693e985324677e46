"""Run the server as a child process and talk to its admin API: used by the pytest plugin
(``tests/plugins/cas_server.py``), the load benchmark and scripts.

Only the standard library is used here, so importing it costs nothing and needs no test deps.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import hfxet_driver
from .cli import HUB_LINE_PREFIX, READY_PREFIX

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
#: The repository of the tokens the helpers below ask for, unless told otherwise.
DEFAULT_REPO = "models/test/repo"

_OPTION_FLAGS = {
    "token_ttl": "--token-ttl",
    "dedup_key_ttl": "--dedup-key-ttl",
    "signed_url_ttl": "--signed-url-ttl",
    "grant_ttl": "--grant-ttl",
    "orphan_xorb_grace": "--orphan-xorb-grace",
    "max_xorb_bytes": "--max-xorb-bytes",
    "max_shard_bytes": "--max-shard-bytes",
    "max_json_bytes": "--max-json-bytes",
    "max_staging_bytes": "--max-staging-bytes",
    "max_header_bytes": "--max-header-bytes",
    "header_timeout": "--header-timeout",
    "body_timeout": "--body-timeout",
    "public_url": "--public-url",
    "heartbeat": "--heartbeat",
    "log_level": "--log-level",
}


def child_pythonpath() -> str:
    """PYTHONPATH that makes ``xet_pyodide`` and ``xet_cas_server`` importable from this
    repository even without editable installs."""
    paths = [str(REPO), str(REPO / "cas_server"), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(p for p in paths if p)


class ServerProcess:
    """One server process. ``options`` mirror the CLI flags (see ``python -m xet_cas_server
    --help``): ``disable=[...]``, ``faults={...}``, ``web=Path``, ``token_ttl``, ...,
    ``extra_args=[...]``."""

    def __init__(self, data_dir: Path, *, dev_secret: str | None = None, **options: Any) -> None:
        self.data_dir = Path(data_dir)
        self.dev_secret = dev_secret or f"dev-{secrets.token_hex(8)}"
        self.options = options
        self.port = 0
        self.url = ""
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.server.log"
        #: ``HF_ENDPOINT=… HF_TOKEN=…``, the line the server prints for people after the ready line
        self.hub_line = ""
        self._proc: subprocess.Popen[str] | None = None

    # ------------------------------------------------------------------ process control
    def _argv(self) -> list[str]:
        o = self.options
        argv = [sys.executable, "-m", "xet_cas_server", "--data", str(self.data_dir)]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--dev-secret", self.dev_secret]
        for name, flag in _OPTION_FLAGS.items():
            if o.get(name) is not None:
                argv += [flag, str(o[name])]
        for group in o.get("disable") or []:
            argv += ["--disable", group]
        if o.get("faults"):
            argv += ["--faults", json.dumps(o["faults"])]
        if o.get("web") is not None:
            argv += ["--web", str(o["web"])]
        return argv + list(o.get("extra_args") or [])

    def start(self) -> ServerProcess:
        """Start and wait for the ready line (port 0 on the first start = any free port)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            self._proc = subprocess.Popen(
                self._argv(),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, "PYTHONPATH": child_pythonpath()},
            )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self._proc.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"CAS server exited with {self._proc.returncode}: {self._tail()}"
                )
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() > deadline:
                    self.kill9()
                    raise RuntimeError(f"CAS server not ready in {START_TIMEOUT}s") from None
                continue
            if line.startswith(READY_PREFIX):
                self.url = line[len(READY_PREFIX) :].strip()
                self.port = int(self.url.rsplit(":", 1)[1])
                with contextlib.suppress(queue.Empty):  # printed right after the ready line
                    hub_line = lines.get(timeout=5).strip()
                    if hub_line.startswith(HUB_LINE_PREFIX):
                        self.hub_line = hub_line
                return self

    def _tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=30)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def restart(self) -> ServerProcess:
        """Stop (if running) and start again: same port, data dir and secret."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                return self.start()
            except RuntimeError:
                if time.monotonic() > deadline:  # the port may linger briefly after a kill
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP
    def _call(self, method: str, path: str, body: Any = None) -> Any:
        """JSON call authorized with the dev secret; raises ``urllib.error.HTTPError`` on >= 400."""
        data = json.dumps(body).encode() if body is not None else None
        url = path if path.startswith("http") else self.url + path
        req = urllib.request.Request(url, data=data, method=method, headers=self.token_headers)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    @property
    def token_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.dev_secret}"}

    def token_url(
        self, scope: str = "write", ttl: int | None = None, repo: str = DEFAULT_REPO
    ) -> str:
        """The token route of ``repo`` (``{type}s/{id}``; tokens are scoped to it: a file is
        readable with tokens of the repositories whose write tokens registered it)."""
        url = f"{self.url}/api/{repo}/xet-{scope}-token/main"
        return f"{url}?ttl={ttl}" if ttl is not None else url

    def token(
        self, scope: str = "write", ttl: int = 3600, repo: str = DEFAULT_REPO
    ) -> tuple[str, int]:
        body = self._call("GET", self.token_url(scope, ttl, repo))
        return body["accessToken"], int(body["exp"])

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_admin/stats")

    def reset_stats(self) -> None:
        self._call("POST", "/_admin/reset-stats")

    def set_faults(self, **config: Any) -> dict[str, Any]:
        return self._call("POST", "/_admin/faults", config)

    def gc(self, grace: float | None = None) -> int:
        """Remove orphan xorbs older than ``grace`` seconds now; returns how many."""
        return self._call("POST", "/_admin/gc", {} if grace is None else {"grace": grace})[
            "removed"
        ]

    def request_log(self, limit: int | None = None) -> list[dict[str, Any]]:
        return self._call("GET", f"/_admin/requests?limit={limit or 0}")["requests"]

    # ------------------------------------------------------------------ hf_xet in a child
    def hf_spec(
        self,
        op: str,
        *,
        config: dict[str, Any] | None = None,
        refresh: bool = False,
        token_ttl: int | None = 3600,
        repo: str = DEFAULT_REPO,
        **fields: Any,
    ) -> dict[str, Any]:
        """An :mod:`.hfxet_driver` spec with endpoint + credentials for ``repo``.
        ``refresh=True`` also hands hf_xet the token endpoint (token_refresh_url + headers);
        ``token_ttl=None`` seeds no token (hf_xet then fetches its first one from that
        endpoint)."""
        spec: dict[str, Any] = {"op": op, "endpoint": self.url, "config": config or {}, **fields}
        scope = "write" if op == "upload" else "read"
        if refresh:
            spec["refresh_url"] = self.token_url(scope, repo=repo)
            spec["refresh_headers"] = self.token_headers
        if token_ttl is not None:
            spec["token"], spec["exp"] = self.token(scope, token_ttl, repo)
        return spec

    def _run(
        self, spec: dict[str, Any], hf_home: Path, env: dict[str, str] | None
    ) -> dict[str, Any]:
        return hfxet_driver.run(
            spec, hf_home=hf_home, env={"PYTHONPATH": child_pythonpath(), **(env or {})}
        )

    def hf_upload(
        self,
        paths: list[Path] | list[str],
        *,
        hf_home: Path,
        env: dict[str, str] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """Upload files in one hf_xet commit.

        Returns ``{"files": [{path, hash, size, sha256}], "dedup": {...}}``."""
        return self._run(
            self.hf_spec("upload", files=[str(p) for p in paths], **spec), hf_home, env
        )

    def hf_download(
        self,
        items: list[dict[str, Any]],
        *,
        hf_home: Path,
        env: dict[str, str] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """Download ``[{hash, size, dest}]`` in one hf_xet download group."""
        items = [{**i, "dest": str(i["dest"])} for i in items]
        return self._run(self.hf_spec("download", items=items, **spec), hf_home, env)

    def hf_stream(
        self,
        file_hash: str,
        size: int,
        dest: Path,
        *,
        hf_home: Path,
        start: int | None = None,
        end: int | None = None,
        env: dict[str, str] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """hf_xet ``download_stream(start, end)`` (end exclusive) written to ``dest``."""
        fields = {"hash": file_hash, "size": size, "dest": str(dest), "start": start, "end": end}
        return self._run(self.hf_spec("stream", **fields, **spec), hf_home, env)


__all__ = ["ServerProcess", "child_pythonpath"]
