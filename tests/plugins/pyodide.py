"""Pyodide tests the way the ecosystem writes them: pytest-pyodide's ``run_in_pyodide``.

pytest-pyodide ships test functions decorated with ``@run_in_pyodide`` into a Pyodide runtime
(Node.js, or a browser driven by Selenium) and brings their value or exception back. This plugin
configures it for this repository so that ``pytest`` needs no extra flags (docs/testing.md):

* ``--dist-dir`` defaults to ``web/pyodide`` (the offline distribution ``build_wheel.sh`` makes)
  and ``--runtime`` follows ``XET_TEST_RUNTIMES`` (``cpython,node,browser`` by default, i.e.
  ``--runtime node,chrome``; ``browser`` is pytest-pyodide's ``chrome``). Either flag given on the
  command line wins.
* Chromium is Debian's ``/usr/bin/chromium`` through Debian's ``/usr/bin/chromedriver``
  (Selenium, offline). Selenium rather than pytest-pyodide's Playwright runner: that one runs
  Playwright's sync API in the main thread, where its event loop breaks ``asyncio.run`` and
  pytest-asyncio for every host test that follows.
* The page server sends COOP/COEP (cross-origin isolation, as our pages need) and serves
  ``.mjs`` as JavaScript.
* One Pyodide per runtime for the whole session (pytest-pyodide starts one per test module):
  ``selenium_module_scope`` is overridden to hand out the session's runner, so the plain
  ``selenium`` fixture and the ``rt`` fixture below share it.

Fixture ``rt``
    Parametrized over ``cpython`` plus the selected Pyodide runtimes (``node``, ``chrome``), one
    test id per runtime. ``rt.call(module, func, *args)`` calls ``tests/portable/<module>.<func>``
    (awaiting a coroutine) natively for ``cpython`` - the CPython twin - and, for the others,
    through the test module's own ``@run_in_pyodide`` function named ``in_pyodide`` (pytest-pyodide
    can only ship functions defined in collected test modules). Arguments and results are
    normalized through JSON on the host, so every runtime's answer has the same shape.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.plugins.runtimes import CHROMIUM, CHROMIUM_ARGS, REPO, ensure_wheel_fresh

DIST = REPO / "web" / "pyodide"
CHROMEDRIVER = os.environ.get("XET_CHROMEDRIVER", "/usr/bin/chromedriver")
#: XET_TEST_RUNTIMES names -> pytest-pyodide runtimes ("cpython" is pytest-pyodide's "host").
RUNTIME_NAMES = {"cpython": "host", "node": "node", "browser": "chrome"}
#: Seconds one call into Pyodide may take (pytest-pyodide's defaults: 20 s browser, 60 s Node).
SCRIPT_TIMEOUT = 900
#: Files the portable modules need inside Pyodide: repository path -> path under /tmp/xet_tests.
PORTABLE_FILES = {
    **{p: f"tests/portable/{p.name}" for p in sorted((REPO / "tests" / "portable").glob("*.py"))},
    REPO / "tests" / "__init__.py": "tests/__init__.py",
    REPO / "tests" / "vectors" / "make_inputs.py": "make_inputs.py",
}
#: Node globals the package may use that pytest-pyodide's Node driver (a ``vm`` context with a
#: short list of globals) does not pass in; the own harness ran in Node's full global scope.
NODE_EXTRA_GLOBALS = ["Blob", "File", "Response", "Headers", "ReadableStream", "crypto",
                      "performance", "structuredClone", "queueMicrotask", "URL"]
COI_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def _explicit(config: pytest.Config, *flags: str) -> bool:
    args = config.invocation_params.args
    return any(a == f or a.startswith(f + "=") for a in args for f in flags)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Our defaults for pytest-pyodide's options, before its own pytest_configure reads them."""
    from tests.plugins.runtimes import selected_runtimes

    if not _explicit(config, "--dist-dir"):
        config.option.dist_dir = DIST
    if not _explicit(config, "--rt", "--runtime"):
        config.option.runtime = ",".join(RUNTIME_NAMES[r] for r in selected_runtimes())
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not go online
    from pytest_pyodide.config import get_global_config

    node_globals = get_global_config().node_extra_globals
    node_globals.extend(g for g in NODE_EXTRA_GLOBALS if g not in node_globals)


def pyodide_runtimes() -> list[str]:
    """The Pyodide runtimes of this run, Node first (pytest-pyodide's selection)."""
    chosen = getattr(pytest, "pyodide_runtimes", set())
    if chosen - {"node", "chrome"}:
        raise pytest.UsageError(f"--runtime: only node and chrome are set up, not {chosen}")
    return sorted(chosen, key=("node", "chrome").index)


class _FewerRoundTrips:
    """Two savings per ``run_in_pyodide`` call for pytest-pyodide's runners, same results:

    * ``load_package``: a package Pyodide already loaded is not asked for again (Pyodide
      would do nothing with it anyway; pytest-pyodide asks before every call).
    * ``run_async``: no ``loadPackagesFromImports`` pass over the code first (it ships the
      code a second time); the packages a test needs are named in its decorator.
    """

    def load_package(self, packages: str | list[str]) -> None:
        loaded: set[str] = self.__dict__.setdefault("_xet_loaded", set())
        wanted = [packages] if isinstance(packages, str) else packages
        new = [p for p in wanted if p not in loaded]
        if new:
            super().load_package(new)  # type: ignore[misc]
            loaded.update(new)

    def run_async(self, code: str) -> Any:
        return self.run_js(  # type: ignore[attr-defined]
            f"let result = await pyodide.runPythonAsync({code!r});\n"
            "return pyodide.$handleTestResult(result);"
        )


def _runner_classes() -> dict[str, type]:
    from pytest_pyodide.runner import NodeRunner, SeleniumChromeRunner

    class DebianChromeRunner(_FewerRoundTrips, SeleniumChromeRunner):
        """pytest-pyodide's Selenium Chrome runner on Debian's chromium and chromedriver."""

        def get_driver(self, jspi: bool = False) -> Any:
            from selenium.webdriver import Chrome
            from selenium.webdriver.chrome.options import Options
            from selenium.webdriver.chrome.service import Service

            options = Options()
            options.binary_location = CHROMIUM
            for flag in ["--headless", *CHROMIUM_ARGS, "--js-flags=--expose-gc"]:
                options.add_argument(flag)
            return Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))

    class NodeRunnerLongLines(_FewerRoundTrips, NodeRunner):
        """pytest-pyodide's Node runner, sending code in 1000-character pieces, not 128.

        Its driver acknowledges every piece; each call ships a pickled function and its
        arguments (several kB, twice), so on a loaded machine the round trips of 128-character
        pieces cost more than the work. A pty's line buffer holds 4095 characters."""

        PIECE = 1000

        def run_js_inner(self, code: str, check_code: str) -> Any:
            from uuid import uuid4

            wrapped = f"let result = await (async () => {{ {code} }})();\nreturn result;"
            cmd_id = str(uuid4())
            self.p.sendline(cmd_id)
            lines = wrapped.split("\n")
            for i, line in enumerate(lines):
                for start in range(0, len(line), self.PIECE):
                    self.p.sendline(line[start : start + self.PIECE] + "$")
                    self.p.expect_exact("{LINE_OK}\r\n")
                if i < len(lines) - 1:
                    self.p.sendline("$")
                    self.p.expect_exact("{LINE_OK}\r\n")
            self.p.sendline(cmd_id)
            self.p.expect_exact(f"{cmd_id}:UUID\r\n", timeout=self.script_timeout)
            self.p.expect_exact(f"{cmd_id}:UUID\r\n")
            if self.p.before:
                self._logs.append(self.p.before.decode()[:-2].replace("\r", ""))
            self.p.expect("[01]\r\n")
            success = int(self.p.match[0].decode()[0]) == 0
            self.p.expect_exact(f"\r\n{cmd_id}:UUID\r\n")
            if success:
                return json.loads(self.p.before.decode().replace("undefined", "null"))
            raise self.JavascriptException("", self.p.before.decode())

    return {"node": NodeRunnerLongLines, "chrome": DebianChromeRunner}


class _PageHandler:
    """Built lazily: pytest-pyodide's request handler plus COOP/COEP and ``.mjs`` types."""

    @staticmethod
    def make() -> Any:
        from pytest_pyodide.server import DefaultHandler

        class Handler(DefaultHandler):
            extensions_map: ClassVar[dict[str, str]] = {
                **DefaultHandler.extensions_map,
                ".mjs": "text/javascript",
            }

        return functools.partial(Handler, extra_headers=COI_HEADERS)


@pytest.fixture(scope="session")
def web_server_main() -> Iterator[tuple[str, int, Path]]:
    """pytest-pyodide's page server for ``web/pyodide``, cross-origin isolated."""
    from pytest_pyodide.server import spawn_web_server

    ensure_wheel_fresh()
    with spawn_web_server(DIST, handler_cls=_PageHandler.make()) as server:
        yield server


class PyodideRunners:
    """One pytest-pyodide runner per runtime, started on first use, closed with the session."""

    def __init__(self, server: tuple[str, int, Path]) -> None:
        self._server = server
        self._runners: dict[str, Any] = {}

    def get(self, runtime: str) -> Any:
        if runtime not in self._runners:
            hostname, port, log = self._server
            runner = _runner_classes()[runtime](
                server_port=port, server_hostname=hostname, server_log=log, dist_dir=DIST
            )
            runner.set_script_timeout(SCRIPT_TIMEOUT)
            if runtime == "node":
                runner.p.timeout = SCRIPT_TIMEOUT  # pexpect's own timeout, 60 s by default
            runner.run(_install_portable_code())
            self._runners[runtime] = runner
        return self._runners[runtime]

    def close(self) -> None:
        for runner in self._runners.values():
            runner.quit()
        self._runners.clear()


def _install_portable_code() -> str:
    files = {dest: src.read_text() for src, dest in PORTABLE_FILES.items()}
    return (
        "import importlib, json, os, sys\n"
        f"for _p, _s in json.loads({json.dumps(files)!r}).items():\n"
        "    _p = '/tmp/xet_tests/' + _p\n"
        "    os.makedirs(os.path.dirname(_p), exist_ok=True)\n"
        "    open(_p, 'w').write(_s)\n"
        "if '/tmp/xet_tests' not in sys.path:\n"
        "    sys.path.insert(0, '/tmp/xet_tests')\n"
        "importlib.invalidate_caches()\n"
    )


@pytest.fixture(scope="session")
def pyodide_runners(web_server_main: tuple[str, int, Path]) -> Iterator[PyodideRunners]:
    runners = PyodideRunners(web_server_main)
    yield runners
    runners.close()


@pytest.fixture(scope="module")
def selenium_module_scope(runtime: str, pyodide_runners: PyodideRunners) -> Any:
    """pytest-pyodide's per-module runner, replaced by the session's one for ``runtime``."""
    return pyodide_runners.get(runtime)


class CPythonCaller:
    """The CPython twin: the same portable function, called natively."""

    name = "cpython"

    def call(self, module: str, func: str, *args: Any) -> Any:
        mod = importlib.import_module(f"tests.portable.{module}")

        def run() -> Any:
            res = getattr(mod, func)(*json.loads(json.dumps(args)))
            return asyncio.run(_await(res)) if inspect.isawaitable(res) else res

        # A fresh thread: no event loop of anyone else's can be running there.
        with ThreadPoolExecutor(max_workers=1) as pool:
            return json.loads(json.dumps(pool.submit(run).result()))


class PyodideCaller:
    """A portable function inside Pyodide, through the test module's ``@run_in_pyodide``."""

    def __init__(self, name: str, selenium: Any, in_pyodide: Any) -> None:
        self.name = name
        self.selenium = selenium
        self._in_pyodide = in_pyodide

    def call(self, module: str, func: str, *args: Any) -> Any:
        result = self._in_pyodide(self.selenium, module, func, json.loads(json.dumps(args)))
        return json.loads(json.dumps(result))


async def _await(awaitable: Any) -> Any:
    return await awaitable


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rt" in metafunc.fixturenames:
        names = ["cpython", *pyodide_runtimes()] if "cpython" in _selected() else pyodide_runtimes()
        metafunc.parametrize("rt", names, indirect=True, scope="module")


def _selected() -> list[str]:
    from tests.plugins.runtimes import selected_runtimes

    return selected_runtimes()


@pytest.fixture
def rt(request: pytest.FixtureRequest) -> Any:
    name = request.param
    if name == "cpython":
        return CPythonCaller()
    in_pyodide = getattr(request.module, "in_pyodide", None)
    if in_pyodide is None:
        raise pytest.UsageError(f"{request.module.__name__} uses `rt` but defines no in_pyodide")
    return PyodideCaller(name, request.getfixturevalue("pyodide_runners").get(name), in_pyodide)
