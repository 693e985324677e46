"""Three Python runtimes under one pytest run: CPython, Pyodide in Node, Pyodide in Chromium.

Fixtures
--------
``pyrt``
    Parametrized over ``cpython``, ``node`` and ``browser``. ``pyrt.call(module, func, *args)``
    imports ``tests/portable/<module>.py`` in that runtime, calls ``func(*args)`` (awaiting it
    if it is a coroutine) and returns its result. Arguments and results travel as JSON, so keep
    them JSON-serializable. Portable modules may import only the standard library and
    ``xet_pyodide``. ``pyrt.name`` tells which runtime a test got.
``node_runtime`` / ``browser_runtime``
    The session-wide Pyodide runtimes themselves (``.run(code) -> str`` evaluates Python with
    top-level await and returns the string value of its last expression).
``chromium``
    The session's :class:`BrowserThread`: Debian ``/usr/bin/chromium`` driven by Playwright on a
    dedicated thread. Browser tests drive their own pages with ``chromium.call(fn)``, where
    ``fn(browser)`` runs on that thread (keep every Playwright object inside such calls).
``static_server``
    A cross-origin-isolated static server for ``web/`` (:mod:`scripts.static_server`).

``XET_TEST_RUNTIMES=cpython,node`` limits the parametrization (the default is all three).
The wheel and ``web/pyodide`` are rebuilt once per session if any source file under
``xet_pyodide/`` is newer than the wheel, so in-Pyodide tests always see the current code.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import queue
import shutil
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
PORTABLE = REPO / "tests" / "portable"
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


def _call_code(module: str, func: str, args: tuple[Any, ...]) -> str:
    return (
        "import importlib, inspect, json, sys\n"
        "sys.path.insert(0, '/tmp/portable') if '/tmp/portable' not in sys.path else None\n"
        f"_mod = importlib.import_module({module!r})\n"
        f"_res = _mod.{func}(*json.loads({json.dumps(args)!r}))\n"
        "if inspect.isawaitable(_res):\n"
        "    _res = await _res\n"
        "json.dumps(_res)\n"
    )


#: Modules from elsewhere in the repository that portable modules import; a Pyodide runtime
#: gets them in /tmp/portable too.
EXTRA_MODULES = {"make_inputs": REPO / "tests" / "vectors" / "make_inputs.py"}


def _install_code(module: str) -> str:
    source = EXTRA_MODULES.get(module, PORTABLE / f"{module}.py").read_text()
    return (
        "import importlib, os, sys\n"
        "os.makedirs('/tmp/portable', exist_ok=True)\n"
        f"open('/tmp/portable/{module}.py', 'w').write({source!r})\n"
        f"sys.modules.pop({module!r}, None)\n"
        "importlib.invalidate_caches()\n"
        "'ok'\n"
    )


class _PyodideRuntime:
    """Shared behaviour of the two Pyodide runtimes: module installation and calls."""

    name = "pyodide"

    def __init__(self) -> None:
        self._installed: set[str] = set()

    def run(self, code: str, timeout: float = 600.0) -> str:
        raise NotImplementedError

    def call(self, module: str, func: str, *args: Any, timeout: float = 600.0) -> Any:
        for name in [*EXTRA_MODULES, module]:
            if name not in self._installed:
                self.run(_install_code(name))
                self._installed.add(name)
        return json.loads(self.run(_call_code(module, func, args), timeout=timeout))


class NodeRuntime(_PyodideRuntime):
    """Pyodide in a Node.js child process speaking JSON lines (tests/node/pyodide_host.mjs)."""

    name = "node"

    def __init__(self) -> None:
        super().__init__()
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (scripts/setup.sh installs it)")
        self._proc = subprocess.Popen(
            [node, str(REPO / "tests" / "node" / "pyodide_host.mjs"), str(DIST)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._next_id = 0
        ready = self._read_line(timeout=180)
        if not ready.get("ready"):
            raise RuntimeError(f"Pyodide in Node did not start: {ready}")
        self.python_version = ready.get("python", "")

    def _read_line(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(self._proc.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            self.close()
            raise TimeoutError(f"Pyodide in Node gave no answer within {timeout} s")
        if not result or not result[0]:
            raise RuntimeError(f"Pyodide in Node exited (code {self._proc.poll()})")
        return json.loads(result[0])

    def run(self, code: str, timeout: float = 600.0) -> str:
        assert self._proc.stdin is not None
        self._next_id += 1
        self._proc.stdin.write(json.dumps({"id": self._next_id, "code": code}) + "\n")
        self._proc.stdin.flush()
        reply = self._read_line(timeout)
        if reply.get("id") != self._next_id:
            raise RuntimeError(f"out-of-order reply from the Node host: {reply}")
        if not reply["ok"]:
            raise AssertionError(f"Python in Pyodide/Node raised:\n{reply['error']}")
        return reply["result"]

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


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


class BrowserRuntime(_PyodideRuntime):
    """Pyodide in headless Chromium on the cross-origin-isolated harness page (web/harness.html)."""

    name = "browser"

    def __init__(self, browser: BrowserThread, base_url: str) -> None:
        super().__init__()
        self._browser = browser
        self.console: list[str] = []

        def open_page(b: Any) -> Any:
            context = b.new_context()
            page = context.new_page()
            page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
            page.goto(f"{base_url}/harness.html")
            page.evaluate("() => window.harness.ready", [])
            return context, page

        self._context, self._page = browser.call(open_page)
        self.cross_origin_isolated = bool(self.evaluate("() => crossOriginIsolated"))

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        """``page.evaluate(expression, arg)`` on the harness page (run on the browser thread)."""
        return self._browser.call(lambda _b: self._page.evaluate(expression, arg))

    def run(self, code: str, timeout: float = 600.0) -> str:
        try:
            return self._browser.call(
                lambda _b: self._page.evaluate("code => window.harness.run(code)", code),
                timeout=timeout,
            )
        except Exception as exc:  # Playwright wraps the Python traceback in its Error
            raise AssertionError(f"Python in Pyodide/Chromium raised:\n{exc}") from None

    def close(self) -> None:
        self._browser.call(lambda _b: self._context.close())


class CPythonRuntime:
    """The test process itself: imports ``tests.portable.<module>`` directly."""

    name = "cpython"

    def call(self, module: str, func: str, *args: Any, timeout: float = 600.0) -> Any:
        mod = importlib.import_module(f"tests.portable.{module}")
        res = getattr(mod, func)(*json.loads(json.dumps(args)))
        if inspect.isawaitable(res):
            res = asyncio.run(_await(res))
        return json.loads(json.dumps(res))


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


async def _await(awaitable: Any) -> Any:
    return await awaitable


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


@pytest.fixture(scope="session")
def node_runtime() -> Iterator[NodeRuntime]:
    ensure_wheel_fresh()
    runtime = NodeRuntime()
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def browser_runtime(chromium: Any, static_server: Any) -> Iterator[BrowserRuntime]:
    runtime = BrowserRuntime(chromium, static_server.url)
    yield runtime
    runtime.close()


@pytest.fixture(params=ALL_RUNTIMES)
def pyrt(request: pytest.FixtureRequest) -> Any:
    name = request.param
    if name not in selected_runtimes():
        pytest.skip(f"runtime {name} deselected by XET_TEST_RUNTIMES")
    if name == "cpython":
        return CPythonRuntime()
    return request.getfixturevalue(f"{name}_runtime")
