"""Errors never show a presigned URL's query, and carry what a support request needs.

A presigned xorb URL (or upload-grant URL) is a bearer credential until it expires. Against the
real local CAS server with fault injection — a signed xorb GET answering 404, 500 or dropping
the connection mid-body, a grant PUT answering 500 or 400 — the error's text, ``.url``,
``.server_message``, its traceback (chained exceptions included), what the browser glue hands
to JavaScript (:func:`~xet_pyodide.io.jsbridge.error_json`) and the CLI's stderr must not hold
the query, nor any value of it. The transport used here is the real httpx one, recording the
URLs it was asked for so that the test knows every signature the server handed out.
Units: :func:`~xet_pyodide.errors.redact_url` / ``redact_text``, request-id headers, the
server's message as a field, ``TokenInfo``'s repr, ``--token-header`` errors.
"""

from __future__ import annotations

import argparse
import re
import traceback
from pathlib import Path
from typing import Any

import pytest

from tests.cpython._cli_helpers import run_cli
from tests.plugins.download_corpus import Corpus, run_async
from xet_pyodide.errors import (
    XetNotFoundError,
    XetServerError,
    redact_text,
    redact_url,
)
from xet_pyodide.io._httpx import HttpxTransport
from xet_pyodide.io.http import HttpClient
from xet_pyodide.io.jsbridge import error_json
from xet_pyodide.io.retry import RetryPolicy
from xet_pyodide.io.testing import MockTransport, json_response
from xet_pyodide.io.transport import Request, Response, StreamingResponse, TransportError

#: Query parameter names of the local server's signed URLs (xorb GETs and grant PUTs).
SIGNED_PARAMS = ("Signature", "Expires", "X-Xet-Signed-Range")
URL_WITH_QUERY = re.compile(r"://[^\s\"'<>]*[?#]")


class RecordingTransport(HttpxTransport):
    """The real httpx transport, remembering every URL it was asked to fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    async def _request(self, req: Request) -> Response:
        self.urls.append(req.url)
        return await super()._request(req)

    async def _stream(self, req: Request) -> StreamingResponse:
        self.urls.append(req.url)
        return await super()._stream(req)

    def secrets(self) -> set[str]:
        """Every query value (of 8+ characters) of a URL requested so far."""
        values = set()
        for url in self.urls:
            for pair in url.partition("?")[2].split("&"):
                value = pair.partition("=")[2]
                if len(value) >= 8:
                    values.add(value)
        return values


def error_texts(exc: BaseException) -> dict[str, str]:
    """Every place an error shows text: str/repr, its fields, the whole traceback (chained
    exceptions included) and what JavaScript would receive."""
    texts = {
        "str": str(exc),
        "repr": repr(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    for name in ("url", "server_message", "request_id"):
        value = getattr(exc, name, None)
        if value is not None:
            texts[name] = str(value)
    for key, value in error_json(exc).items():
        if isinstance(value, str):
            texts[f"js.{key}"] = value
    return texts


def assert_no_query(texts: dict[str, str], secrets: set[str] = frozenset()) -> None:
    """No text holds a signed URL's parameters, a URL with a query, or one of ``secrets``
    (query values known to the test). Also used by the browser tests."""
    for where, text in texts.items():
        for name in SIGNED_PARAMS:
            assert f"{name}=" not in text, (where, text)
        assert not URL_WITH_QUERY.search(text), (where, text)
        for secret in secrets:
            assert secret not in text, (where, secret, text)


def fast_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)


def last_request(corpus: Corpus, endpoint: str) -> dict[str, Any]:
    return [e for e in corpus.server.request_log() if e["endpoint"] == endpoint][-1]


async def _download(corpus: Corpus, transport: RecordingTransport) -> None:
    from xet_pyodide import XetSession

    f = corpus.files["text"]
    async with XetSession(
        corpus.server.url,
        corpus.read_token(),
        transport=transport,
        retry=fast_retry(),
        chunk_cache=False,
    ) as session:
        await session.download_bytes(f["hash"], f["size"])


XORB_FETCH_FAULTS = {
    "404": ({"error_rate": 1.0, "status": 404}, XetNotFoundError, 404),
    "500": ({"error_rate": 1.0, "status": 500}, XetServerError, 500),
    "drop": ({"drop_rate": 1.0}, XetServerError, None),
}


def failure_under_fault(
    corpus: Corpus, endpoint: str, rule: dict[str, Any], expected: type[Exception], work: Any
) -> tuple[Any, dict[str, Any], RecordingTransport]:
    """Run ``work(corpus, transport)`` with the fault ``rule`` on ``endpoint``: it must raise
    ``expected``, which must hold no query. Returns that error, the server's log entry of the
    last request to ``endpoint`` and the transport."""
    transport = RecordingTransport()
    corpus.server.set_faults(endpoints={endpoint: rule})
    try:
        with pytest.raises(expected) as info:
            run_async(work(corpus, transport))
        last = last_request(corpus, endpoint)
    finally:
        corpus.server.set_faults()
    assert transport.secrets(), "the test saw no signed URL: it would prove nothing"
    assert_no_query(error_texts(info.value), transport.secrets())
    return info.value, last, transport


@pytest.mark.parametrize("kind", list(XORB_FETCH_FAULTS))
def test_failed_xorb_fetch_shows_no_signature(corpus: Corpus, kind: str) -> None:
    rule, error_type, status = XORB_FETCH_FAULTS[kind]
    exc, last, transport = failure_under_fault(corpus, "xorb_fetch", rule, error_type, _download)
    signed = [u for u in transport.urls if "Signature=" in u]
    assert exc.url == signed[-1].split("?")[0] and exc.status == status
    # what a support request needs: the server's id of the failing request, and its message
    assert exc.request_id == last["request_id"]
    assert error_json(exc)["requestId"] == last["request_id"]
    if status is None:  # no answer: a transport failure, said once (not once per URL)
        assert exc.server_message is None and str(exc).count("http://") == 1
        assert "peer closed connection" in str(exc)
    else:
        assert exc.server_message == f"fault injection: {status} on xorb_fetch"
        assert error_json(exc)["serverMessage"] == exc.server_message


async def _upload(corpus: Corpus, transport: RecordingTransport) -> None:
    from xet_pyodide import XetSession

    async with XetSession(
        corpus.server.url, corpus.server.token("write"), transport=transport, retry=fast_retry()
    ) as session:
        await session.upload_bytes(b"grant PUT fails " * 40_000, name="g.bin")
        await session.finalize()


@pytest.mark.parametrize("status", [500, 400])
def test_failed_grant_put_shows_no_signature(corpus: Corpus, status: int) -> None:
    rule = {"error_rate": 1.0, "status": status}
    exc, last, _ = failure_under_fault(corpus, "grant_put", rule, XetServerError, _upload)
    assert exc.status == status and exc.request_id == last["request_id"]
    assert exc.server_message == f"fault injection: {status} on grant_put"
    assert "to grant URL" in str(exc)


def test_cli_download_error_shows_no_signature(corpus: Corpus, tmp_path: Path) -> None:
    """``python -m xet_pyodide download`` against a 404ing signed URL: one line on stderr,
    with status, request id and the server's message, and no query."""
    f = corpus.files["text"]
    token, _ = corpus.read_token()
    corpus.server.set_faults(endpoints={"xorb_fetch": {"error_rate": 1.0, "status": 404}})
    try:
        done = run_cli(
            "download", "--endpoint", corpus.server.url, "--token", token,
            f["hash"], str(f["size"]), str(tmp_path / "out"),
        )  # fmt: skip
        last = last_request(corpus, "xorb_fetch")
    finally:
        corpus.server.set_faults()
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("xet-pyodide download: error: xorb fetch failed: fault injection: 404")
    assert f"HTTP 404, request id {last['request_id']}, http://127.0.0.1" in line
    assert not URL_WITH_QUERY.search(line) and "Signature" not in line


# ---------------------------------------------------------------------------- units


def test_redact_url_drops_query_fragment_and_credentials() -> None:
    assert redact_url("https://s3.example/b/x?X-Amz-Signature=abc&X-Amz-Credential=k") == (
        "https://s3.example/b/x"
    )
    assert redact_url("https://user:pa%40ss@cdn.example:8443/p/q#frag?x") == (
        "https://cdn.example:8443/p/q"
    )
    assert redact_url("http://127.0.0.1:9/v1/reconstructions/ab") == (
        "http://127.0.0.1:9/v1/reconstructions/ab"
    )


def test_redact_text_cuts_every_url_and_echoed_query_values() -> None:
    url = "https://s3.example/k?sig=SECRETSIGNATURE123&Expires=17&t=a%2Bb%2Fcdefgh"
    text = (
        f"Failed to parse URL from {url}; <SignatureProvided>SECRETSIGNATURE123"
        "</SignatureProvided> a+b/cdefgh, and (see http://other.example/x?token=zzz) too"
    )
    redacted = redact_text(text, url)
    # a query runs to the next space or quote (it may hold ';', ')' ...): cut with it
    assert redacted == (
        "Failed to parse URL from https://s3.example/k <SignatureProvided>[redacted]"
        "</SignatureProvided> [redacted], and (see http://other.example/x too"
    )


async def test_http_errors_redact_whatever_url_they_are_given() -> None:
    """Any URL a server hands out, whatever its parameter names: the error built when the
    request fails (final status, or no answer) shows it without the query."""
    signed = "https://bucket.s3.example/xorbs/ab?X-Amz-Signature=f00dfeed1234&X-Amz-Date=2025"

    def handler(req: Any) -> Response:
        if req.method == "PUT":
            raise TransportError(f"connect failed for {req.url}", url=req.url)
        return json_response(400, {"error": f"bad signature f00dfeed1234 for {req.url}"})

    policy = RetryPolicy(max_attempts=2, base_delay=0, max_delay=0)
    http = HttpClient(MockTransport(handler), None, retry=policy)
    with pytest.raises(XetServerError) as dropped:
        await http.send("PUT", signed, what="upload", auth=False, external=True)
    from xet_pyodide.io.http import raise_for_status

    refused = await http.send("GET", signed, what="fetch", auth=False, external=True)
    with pytest.raises(XetServerError) as answered:
        raise_for_status(refused, "fetch")
    for exc in (dropped.value, answered.value):
        assert exc.url == "https://bucket.s3.example/xorbs/ab"
        assert_no_query(error_texts(exc), {"f00dfeed1234", "X-Amz-Date=2025"})
    assert str(dropped.value) == (
        "upload failed: connect failed for (after 2 attempts) "
        "(https://bucket.s3.example/xorbs/ab)"  # the URL once, not also inside the cause
    )
    assert answered.value.server_message == (
        "bad signature [redacted] for https://bucket.s3.example/xorbs/ab"
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-request-id": "cas-1", "x-amzn-trace-id": "Root=1-2", "x-amz-cf-id": "cf"}, "cas-1"),
        ({"x-amzn-trace-id": "Root=1-2", "x-amz-cf-id": "cf=="}, "Root=1-2"),
        ({"x-amz-cf-id": "cf=="}, "cf=="),
        ({}, None),
    ],
)
async def test_request_id_falls_back_to_cdn_ids(
    headers: dict[str, str], expected: str | None
) -> None:
    http = HttpClient(MockTransport(lambda r: Response(404, headers, b"")), None)
    resp = await http.send("GET", "https://cdn.example/x?sig=1", what="xorb fetch", auth=False)
    from xet_pyodide.io.retry import error_for_response

    exc = error_for_response(resp, "xorb fetch")
    assert exc.request_id == expected
    assert error_json(exc)["requestId"] == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": "Repository not found"}', "Repository not found"),
        (b'{"error": "bad_range", "message": "range past the end"}', "range past the end"),
        (b"<html>Bad   Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", None),
    ],
)
def test_server_message_is_a_field(body: bytes, expected: str | None) -> None:
    from xet_pyodide.io.retry import error_for_response

    exc = error_for_response(Response(502, {}, body, "http://cas/v1/x"), "probe")
    assert exc.server_message == expected
    assert str(exc).startswith("probe failed" + (f": {expected}" if expected else ""))


def test_token_info_repr_leaves_the_token_out() -> None:
    from xet_pyodide.io.tokens import TokenInfo

    info = TokenInfo("eyJ-secret-token", 1_900_000_000, "https://cas.example")
    assert "eyJ-secret-token" not in repr(info) and "eyJ-secret-token" not in str(info)
    assert repr(info) == "TokenInfo(exp=1900000000, cas_url='https://cas.example')"


def test_request_repr_leaves_the_headers_out() -> None:
    req = Request("GET", "http://cas/v1/x", headers={"Authorization": "Bearer eyJ-secret"})
    assert "eyJ-secret" not in repr(req) and req.headers == {"Authorization": "Bearer eyJ-secret"}


def test_malformed_token_header_is_not_echoed() -> None:
    from xet_pyodide.cli.common import parse_header

    with pytest.raises(argparse.ArgumentTypeError) as info:
        parse_header("Bearer hf_SeCrEt")  # the "Name:" was forgotten
    assert "hf_SeCrEt" not in str(info.value) and "Name: value" in str(info.value)
    assert parse_header("Authorization: Bearer hf_x") == ("Authorization", "Bearer hf_x")
