"""Bare headless Chromium for the benchmarks: no Playwright/CDP attached while timing (it slows
fetch and Blob work several times). Same executable and flags as the test harness."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.plugins.runtimes import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


@contextmanager
def bare_chromium(url: str, *, incognito: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """Open ``url`` in a fresh headless Chromium profile; the browser is stopped on exit.
    ``incognito``: in an off-the-record context, as a Playwright ``new_page()`` or an
    Incognito window (Blob data cannot spill to the profile's disk)."""
    # a child process may still be writing to the profile as the browser exits
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", *CHROMIUM_ARGS, f"--user-data-dir={profile}",
             *(["--incognito"] if incognito else []), url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def page_result(
    mounts: dict[str, Path], page: str, config: dict[str, Any], report: str, *,
    timeout: float, loaded_timeout: float | None = None,
    on_browser: Callable[[int], None] | None = None,
) -> Any:  # fmt: skip
    """Serve ``web/`` plus ``mounts`` (cross-origin isolated), open ``page?config=<JSON>`` in
    a bare Chromium and return the ``result`` the page POSTs to ``/_report/<report>`` (as
    ``{ok, result}`` or ``{ok: false, error}``, which raises). ``loaded_timeout``: first wait
    for ``/_report/loaded`` (a page that failed to load fails fast). ``on_browser``: called
    with the browser's pid once it started (e.g. to sample its CPU, bench/_procs.py)."""
    from scripts.static_server import StaticServer

    server = StaticServer(REPO / "web", mounts=mounts).start_background()
    url = f"{server.url}{page}?config={quote(json.dumps(config))}"
    try:
        with bare_chromium(url) as proc:
            if on_browser is not None:
                on_browser(proc.pid)
            if loaded_timeout is not None:
                server.wait_report("loaded", timeout=loaded_timeout)
            answer = server.wait_report(report, timeout=timeout)
    finally:
        server.shutdown()
        server.server_close()
    assert isinstance(answer, dict)
    if not answer.get("ok"):
        raise RuntimeError(f"the page {page} failed: {answer.get('error')}")
    return answer["result"]


__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "bare_chromium", "page_result"]
