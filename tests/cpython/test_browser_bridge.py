"""The runtime-independent parts of the browser front door's Python side (CPython).

The Pyodide-only glue is exercised end to end in tests/browser/; these pin the shapes that
cross the JS boundary: camelCase results, option lookup, error envelopes, range parsing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xet_pyodide.errors import XetAuthError
from xet_pyodide.io.blob import parse_range
from xet_pyodide.io.jsbridge import camel, camel_keys, envelope, error_json, notify, option


def test_camel_case_keys() -> None:
    assert camel("bytes_processed") == "bytesProcessed"
    assert camel("xorb_bytes_uploaded") == "xorbBytesUploaded"
    assert camel("phase") == "phase"
    nested = {"files": [{"bytes_packed": 1, "name": "a"}], "shard_total": 2}
    assert camel_keys(nested) == {"files": [{"bytesPacked": 1, "name": "a"}], "shardTotal": 2}


def test_option_lookup() -> None:
    class Options:
        sha256 = False
        blockSize = None

    assert option(None, "x", 5) == 5
    assert option({"a": 1}, "a") == 1
    assert option({"a": None}, "a", 2) == 2
    assert option(Options(), "sha256", True) is False  # a false value is not "absent"
    assert option(Options(), "blockSize", 7) == 7
    assert option(Options(), "missing", 3) == 3


def test_envelopes_carry_values_and_typed_errors() -> None:
    async def ok() -> dict:
        return {"fileHash": "ab"}

    async def fail() -> None:
        err = XetAuthError("token rejected")
        err.status = 401  # type: ignore[attr-defined]
        raise err

    assert asyncio.run(envelope(ok())) == {"ok": True, "value": {"fileHash": "ab"}}
    bad = asyncio.run(envelope(fail()))
    assert bad["ok"] is False
    error = bad["error"]
    assert error["name"] == "XetAuthError" and error["message"] == "token rejected"
    assert error["status"] == 401
    assert "XetAuthError" in error["pythonTraceback"]
    assert error_json(ValueError())["message"] == "ValueError"


def test_failing_progress_listener_is_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    def listener(_event: dict) -> None:
        raise RuntimeError("boom")

    asyncio.run(notify(listener, {"phase": "done"}))
    assert "progress listener failed: RuntimeError: boom" in capsys.readouterr().err


def test_parse_range() -> None:
    assert parse_range(None) is None
    assert parse_range([3, 10]) == (3, 10)
    assert parse_range({"start": 0, "end": 5}) == (0, 5)

    class Range:
        start = 2
        end = 4

    assert parse_range(Range()) == (2, 4)
    with pytest.raises(ValueError):
        parse_range({"start": 1})


def test_download_reader_cancel_while_a_read_is_pending(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream may be cancelled (or aborted) while its pull waits for the download: the
    pending read ends with ``None`` and the download's iterator is closed (a running async
    generator cannot be closed directly: the read is cancelled first)."""
    from xet_pyodide.io import blob

    monkeypatch.setattr(blob, "js_uint8array_copy", bytes)
    closed: list[bool] = []

    async def pieces() -> Any:
        try:
            yield memoryview(b"a" * 10)
            await asyncio.Event().wait()  # the next piece never comes
            yield memoryview(b"b")
        finally:
            closed.append(True)

    async def run() -> None:
        reader = blob.DownloadReader(pieces(), block=4)
        assert await reader.read() == b"aaaa"
        assert await reader.read() == b"aaaa"
        pending = asyncio.ensure_future(reader.read())  # waits for the piece after "aa"
        for _ in range(3):
            await asyncio.sleep(0)
        assert not pending.done()
        await reader.cancel()
        assert await pending is None
        assert closed == [True]
        assert await reader.read() is None

    asyncio.run(run())
