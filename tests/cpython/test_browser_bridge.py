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


class _JsError:
    name = "NotReadableError"
    message = "The requested file could not be read"


class _JsException(Exception):
    """Stands in for Pyodide's ``JsException`` (its ``js_error`` is the JS error)."""

    js_error = _JsError()


class _Buffer:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def to_bytes(self) -> bytes:
        return self.data


class _FakeBlob:
    """``slice(a, b).arrayBuffer()`` over ``data``; reads from ``fail_at`` on reject, and every
    read returns ``short`` bytes less than asked."""

    def __init__(self, data: bytes, fail_at: int | None = None, short: int = 0) -> None:
        self.data, self.size, self.fail_at, self.short = data, len(data), fail_at, short

    def slice(self, start: int, end: int) -> Any:
        blob = self

        class _Slice:
            async def _read(self) -> _Buffer:
                if blob.fail_at is not None and end > blob.fail_at:
                    raise _JsException("NotReadableError")
                return _Buffer(blob.data[start : end - blob.short])

            def arrayBuffer(self) -> Any:  # the JS name; like a promise, it runs now
                return asyncio.ensure_future(self._read())

        return _Slice()


def test_read_blob_turns_read_failures_into_xet_read_error() -> None:
    """Blocks in order; a rejected read or a short one is an XetReadError naming the
    browser's reason, after the blocks read before it."""
    from xet_pyodide.errors import XetReadError
    from xet_pyodide.io.blob import read_blob, read_slice

    data = bytes(range(256)) * 40  # 10240 bytes

    async def collect(blob: _FakeBlob) -> list[bytes]:
        return [block async for block in read_blob(blob, block_size=4096)]

    assert asyncio.run(collect(_FakeBlob(data))) == [data[:4096], data[4096:8192], data[8192:]]
    got: list[bytes] = []

    async def until_failure() -> None:
        async for block in read_blob(_FakeBlob(data, fail_at=8192), block_size=4096):
            got.append(block)

    with pytest.raises(XetReadError, match="NotReadableError: The requested file could not"):
        asyncio.run(until_failure())
    assert got == [data[:4096], data[4096:8192]]
    with pytest.raises(XetReadError, match="4096 bytes expected, 4095 read"):
        asyncio.run(collect(_FakeBlob(data, short=1)))
    assert asyncio.run(read_slice(_FakeBlob(data), 10, 20)) == data[10:20]
