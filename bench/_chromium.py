"""Bare headless Chromium for the benchmarks: no Playwright/CDP attached while timing (it slows
fetch and Blob work several times). Same executable and flags as the test harness."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.plugins.runtimes import CHROMIUM, CHROMIUM_ARGS  # noqa: E402


@contextmanager
def bare_chromium(url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Open ``url`` in a fresh headless Chromium profile; the browser is stopped on exit."""
    # a child process may still be writing to the profile as the browser exits
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless", *CHROMIUM_ARGS, f"--user-data-dir={profile}", url],
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


__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "bare_chromium"]
