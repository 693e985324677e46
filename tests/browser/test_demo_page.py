"""The demo page (``web/index.html``) driven like a user would: choose files, upload, read the
results, download back and verify, all against the real local CAS server over HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import hf_xet
import pytest

from tests.browser.conftest import MIB, DemoPage, float_like, random_bytes, write_files

WAIT_JS = "states => states.includes(window.demo.state)"


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    shared = random_bytes(2 * MIB, 31)
    return {
        "weights.bin": shared + float_like(2 * MIB, 32),
        "copy-of-weights.bin": shared + random_bytes(300_000, 33),  # 2 MiB deduplicated
        "notes.txt": b"xet demo notes\n" * 4000,
    }


@pytest.fixture(scope="module")
def page(open_page: Any) -> DemoPage:
    return open_page(workers=2)


def wait_state(page: DemoPage, *states: str, timeout_ms: int = 120_000) -> str:
    page.call(lambda p: p.wait_for_function(WAIT_JS, arg=list(states), timeout=timeout_ms))
    return page.evaluate("() => window.demo.state")


def choose_and_upload(page: DemoPage, files: dict[str, bytes]) -> str:
    payloads = [
        {"name": name, "mimeType": "application/octet-stream", "buffer": data}
        for name, data in files.items()
    ]

    def act(p: Any) -> None:
        p.set_input_files("#files", payloads)
        p.click("#upload")

    page.call(act)
    return wait_state(page, "uploaded", "error")


def test_demo_upload_verify_and_screenshot(
    page: DemoPage, files: dict[str, bytes], tmp_path: Path
) -> None:
    state = choose_and_upload(page, files)
    assert state == "uploaded", page.evaluate("() => window.demo.error")
    paths = write_files(tmp_path / "src", files)
    expected = {
        name: info.hash
        for name, info in zip(
            files, hf_xet.hash_files([str(paths[n]) for n in files]), strict=True
        )
    }
    text = page.call(lambda p: p.inner_text("body"))
    for name, data in files.items():
        assert expected[name] in text
        assert hashlib.sha256(data).hexdigest() in text
    assert "Phase: done" in text
    assert "Deduplicated within this upload" in text and "Dedup ratio" in text
    demo = page.evaluate("() => ({phases: window.demo.phases, results: window.demo.results})")
    assert demo["phases"][0] == "processing" and demo["phases"][-1] == "done"
    assert "uploading_shard" in demo["phases"]
    metrics = demo["results"]["metrics"]
    assert metrics["dedupedBytes"] >= 2 * MIB - 128 * 1024  # the shared prefix, minus edges
    bars = page.call(lambda p: p.eval_on_selector_all(
        "#file-table progress", "els => els.map((e) => e.value)"))
    assert bars == [1] * (2 * len(files))

    # download back and verify (downloadToBlob + WebCrypto SHA-256)
    page.call(lambda p: p.click("#verify"))
    assert wait_state(page, "verified", "error") == "verified", page.evaluate(
        "() => window.demo.error")
    verified = page.evaluate("() => window.demo.verified")
    assert [v["ok"] for v in verified] == [True] * len(files)
    assert page.call(lambda p: p.inner_text("#file-table")).count("verify OK") == len(files)

    shot = tmp_path / "demo.png"
    page.call(lambda p: p.screenshot(path=str(shot), full_page=True))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000

    # what the page uploaded, hf_xet downloads byte-identical
    items = [
        {"hash": f["fileHash"], "size": f["fileSize"], "dest": tmp_path / "dl" / f["name"]}
        for f in demo["results"]["files"]
    ]
    (tmp_path / "dl").mkdir()
    # (with a read token of the repository the page wrote to: tokens are scoped to one)
    page.server.hf_download(items, hf_home=tmp_path / "hf-home", repo="models/demo/repo")
    for item in items:
        assert Path(item["dest"]).read_bytes() == files[Path(item["dest"]).name]


def test_demo_shows_readable_errors(page: DemoPage, files: dict[str, bytes]) -> None:
    secret = page.server.dev_secret
    page.call(lambda p: p.fill("#secret", "wrong-secret"))
    try:
        assert choose_and_upload(page, {"notes.txt": files["notes.txt"]}) == "error"
        message = page.call(lambda p: p.inner_text("#error"))
        assert message.startswith("XetAuthError: token endpoint answered HTTP 401"), message
        assert page.call(lambda p: p.is_visible("#error"))
    finally:
        page.call(lambda p: p.fill("#secret", secret))
    # the page recovers: the next upload works and clears the error
    assert choose_and_upload(page, {"notes.txt": files["notes.txt"]}) == "uploaded"
    assert not page.call(lambda p: p.is_visible("#error"))


def test_demo_cancel_stops_the_upload(page: DemoPage, files: dict[str, bytes],
                                      tmp_path: Path) -> None:
    """Cancel aborts the running upload (its AbortSignal): the page says so, registers nothing,
    and the next upload works."""
    before = page.server.stats()
    big = tmp_path / "big.bin"  # large enough to be cancelled while it is processed
    big.write_bytes(b"".join(random_bytes(64 * MIB, 35 + i) for i in range(4)))

    def act(p: Any) -> None:
        p.set_input_files("#files", str(big))
        p.click("#upload")
        p.wait_for_function("() => window.demo.phases.length > 0")  # processing started
        p.click("#cancel", timeout=5000)

    page.call(act)
    assert wait_state(page, "cancelled", "uploaded", "error") == "cancelled", \
        page.evaluate("() => window.demo.error")
    assert page.call(lambda p: p.inner_text("#phase")) == "upload cancelled"
    assert not page.call(lambda p: p.is_visible("#error"))
    assert page.call(lambda p: p.is_disabled("#cancel"))
    after = page.server.stats()
    assert after["files_registered"] == before["files_registered"]  # nothing registered
    assert after["shard_bytes_received"] == before["shard_bytes_received"]
    assert choose_and_upload(page, {"notes.txt": files["notes.txt"]}) == "uploaded"
