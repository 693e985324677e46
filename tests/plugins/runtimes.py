"""Browsers and pages for the tests that drive web pages (the demo, the JS API, the worker pool).

Python code inside Pyodide is tested through pytest-pyodide's ``run_in_pyodide`` instead
(tests/plugins/pyodide.py, docs/testing.md).

Fixtures
--------
``chromium``
    The session's :class:`BrowserThread`: Debian ``/usr/bin/chromium`` driven by Playwright on a
    dedicated thread. Browser tests drive their own pages with ``chromium.call(fn)``, where
    ``fn(browser)`` runs on that thread (keep every Playwright object inside such calls).
``static_server``
    A cross-origin-isolated static server for ``web/`` (:mod:`scripts.static_server`).

``XET_TEST_RUNTIMES=cpython,node`` limits the runtimes (the default is all three:
``cpython,node,browser``); :func:`selected_runtimes` reads it. The wheel and ``web/pyodide`` are
rebuilt once per session if any source file under ``xet_pyodide/`` is newer than the wheel, so
in-Pyodide tests and pages always see the current code.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "web" / "pyodide"
CHROMIUM = os.environ.get("XET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ALL_RUNTIMES = ("cpython", "node", "browser")

_build_lock = threading.Lock()
_build_checked = False


def selected_runtimes() -> list[str]:
    raw = os.environ.get("XET_TEST_RUNTIMES", "")
    chosen = [r.strip() for r in raw.split(",") if r.strip()] or list(ALL_RUNTIMES)
    unknown = set(chosen) - set(ALL_RUNTIMES)
    if unknown:
        raise pytest.UsageError(f"XET_TEST_RUNTIMES: unknown runtime(s) {sorted(unknown)}")
    return chosen


def _current_wheel() -> Path | None:
    info = DIST / "xet_pyodide_wheel.json"
    if not info.exists():
        return None
    wheel = DIST / json.loads(info.read_text())["wheel"]
    return wheel if wheel.exists() else None


def ensure_wheel_fresh() -> Path:
    """Rebuild the wheel + Pyodide distribution if package sources changed since the last build."""
    global _build_checked
    with _build_lock:
        wheel = _current_wheel()
        if not _build_checked or wheel is None:
            built = wheel.stat().st_mtime if wheel else 0.0
            sources = [
                p
                for p in (REPO / "xet_pyodide").rglob("*")
                if p.is_file() and p.suffix in {".py", ".c", ".h", ".wasm"}
            ]
            sources.append(REPO / "scripts" / "build_kernels.sh")
            if wheel is None or any(p.exists() and p.stat().st_mtime > built for p in sources):
                # the build's progress goes to stderr: stdout may be a bench's --json output
                subprocess.run(
                    ["bash", str(REPO / "build_wheel.sh")],
                    check=True,
                    stdout=2,
                    env={**os.environ, "PYTHON": sys.executable},
                )
            _build_checked = True
            wheel = _current_wheel()
        assert wheel is not None, "build_wheel.sh produced no web/pyodide/xet_pyodide_wheel.json"
        return wheel


class BrowserThread:
    """Headless Chromium (Playwright's sync API) confined to one dedicated thread.

    Playwright's sync API keeps an asyncio event loop running in the thread that started it;
    in the main thread that would break every later ``asyncio.run`` and pytest-asyncio test.
    All browser work therefore happens here: ``call(fn)`` runs ``fn(browser)`` on this thread
    and returns its result (or raises its exception) in the caller's thread.
    """

    def __init__(self, executable: str = CHROMIUM, args: list[str] | None = None) -> None:
        if not Path(executable).exists():
            raise RuntimeError(f"{executable} is missing (scripts/setup.sh installs chromium)")
        self._queue: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main,
            args=(executable, args or CHROMIUM_ARGS, started),
            name="chromium",
            daemon=True,
        )
        self._thread.start()
        started.result(timeout=120)

    def _main(self, executable: str, args: list[str], started: Future[None]) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=executable, headless=True, args=args)
                started.set_result(None)
                while (item := self._queue.get()) is not None:
                    fn, result = item
                    try:
                        result.set_result(fn(browser))
                    except BaseException as exc:  # handed to the caller
                        result.set_exception(exc)
                browser.close()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    def call(self, fn: Callable[[Any], Any], timeout: float | None = 900.0) -> Any:
        result: Future[Any] = Future()
        self._queue.put((fn, result))
        return result.result(timeout=timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)


def evaluate_steps(
    chromium: BrowserThread,
    url: str,
    script: str,
    steps: list[dict[str, Any]],
    *,
    reload: bool = False,
    timeout: float = 600.0,
) -> list[Any]:
    """Open ``url`` in a fresh browser context and evaluate ``script`` once per step (its
    argument: the step's dict). A step's ``before`` callable, if any, runs first (e.g. to set
    server faults); with ``reload`` the page is reloaded between steps (storage is kept)."""

    def go(browser: Any) -> list[Any]:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(url)
            results = []
            for i, step in enumerate(steps):
                if i and reload:
                    page.reload()
                before = step.pop("before", None)
                if before is not None:
                    before()
                results.append(page.evaluate(script, step))
            return results
        finally:
            context.close()

    return chromium.call(go, timeout=timeout)


@pytest.fixture(scope="session")
def static_server() -> Iterator[Any]:
    from scripts.static_server import StaticServer

    ensure_wheel_fresh()
    server = StaticServer(REPO / "web", mounts={"/bench": REPO / "bench"}).start_background()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def chromium() -> Iterator[BrowserThread]:
    browser = BrowserThread()
    yield browser
    browser.close()
