"""The demo page (``web/index.html``) driven like a user would, against the real local server
(Hub API + CAS): list a repository, choose files, upload and commit, read the results, download
back and verify; readable failures, retry announcements, no stale state, accessibility."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

import hf_xet
import pytest

from tests.browser.conftest import MIB, DemoPage, float_like, random_bytes, write_files
from tests.cpython._hub_helpers import assert_ok, run_python_client, unique
from tests.plugins.cas_server import stored_state

WAIT_JS = "states => states.includes(window.demo.state)"
#: The issue-24 round trip: a file of this many MiB of random bytes through the demo page in a
#: fresh context. 1 GiB is the bar; XET_DEMO_BIG_MIB lowers it for a quick local check.
BIG_MIB = int(os.environ.get("XET_DEMO_BIG_MIB", "1024"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    # Binary (a NUL in the first bytes, as model files have): the Hub sends them to Xet.
    shared = b"\0" + random_bytes(2 * MIB - 1, 31)
    return {
        "weights.bin": shared + float_like(2 * MIB, 32),
        "copy-of-weights.bin": shared + random_bytes(300_000, 33),  # 2 MiB deduplicated
        "notes.txt": b"xet demo notes\n" * 4000,  # small text: inline in the commit
    }


@pytest.fixture(scope="module")
def page(open_page: Any) -> DemoPage:
    return open_page(workers=2, repo="demo/flow")


def wait_state(page: DemoPage, *states: str, timeout_ms: int = 120_000) -> str:
    page.call(lambda p: p.wait_for_function(WAIT_JS, arg=list(states), timeout=timeout_ms))
    return page.evaluate("() => window.demo.state")


def set_repo(page: DemoPage, repo: str) -> None:
    page.call(lambda p: p.fill("#repo", repo))


def choose_and_upload(page: DemoPage, files: dict[str, bytes], timeout_ms: int = 120_000) -> str:
    payloads = [
        {"name": name, "mimeType": "application/octet-stream", "buffer": data}
        for name, data in files.items()
    ]

    def act(p: Any) -> None:
        p.set_input_files("#files", payloads)
        p.click("#upload")

    page.call(act)
    return wait_state(page, "uploaded", "error", "cancelled", timeout_ms=timeout_ms)


def text_of(page: DemoPage, selector: str) -> str:
    return page.call(lambda p: p.inner_text(selector))


def focused(page: DemoPage) -> str:
    return page.evaluate("() => document.activeElement && document.activeElement.id")


def bar_values(page: DemoPage, selector: str) -> list[float]:
    return page.call(lambda p: p.eval_on_selector_all(
        selector, "els => els.map((e) => e.value)"))  # fmt: skip


def test_demo_hub_flow_list_commit_download_verify(
    page: DemoPage, files: dict[str, bytes], tmp_path: Path
) -> None:
    """The Repository field is real: an empty repository is listed as such; the upload makes
    one commit (id and link shown); the listing then shows the files with sizes and that
    commit; each verifies on download; huggingface_hub reads what the page committed."""
    repo = unique("demo/flow")
    set_repo(page, repo)
    page.call(lambda p: p.click("#list"))
    assert wait_state(page, "ready", "error") == "ready", page.evaluate("() => window.demo.error")
    assert "does not exist yet" in text_of(page, "#repo-status")

    assert choose_and_upload(page, files) == "uploaded", page.evaluate("() => window.demo.error")
    demo = page.evaluate("() => ({phases: window.demo.phases, results: window.demo.results,"
                         " listing: window.demo.listing})")
    result = demo["results"]
    assert result["committed"] is True and re.fullmatch(r"[0-9a-f]{40}", result["commitOid"])
    link = page.call(lambda p: p.get_attribute("#commit-link", "href"))
    assert link == result["commitUrl"] and result["commitOid"] in text_of(page, "#commit")
    assert focused(page) == "commit"  # focus lands on the outcome
    modes = {f["path"]: f["mode"] for f in result["files"]}
    assert modes == {"weights.bin": "lfs", "copy-of-weights.bin": "lfs", "notes.txt": "regular"}
    assert demo["phases"][0] == "preuploading" and demo["phases"][-2:] == ["committing", "done"]
    assert "uploading_shard" in demo["phases"]

    # hashes as hf_xet computes them, SHA-256 as hashlib, all on screen
    paths = write_files(tmp_path / "src", files)
    big = ["weights.bin", "copy-of-weights.bin"]
    expected = {n: i.hash for n, i in zip(
        big, hf_xet.hash_files([str(paths[n]) for n in big]), strict=True)}  # fmt: skip
    table = text_of(page, "#file-table")
    for f in result["files"]:
        assert f["sha256"] == sha(files[f["path"]]) and f["sha256"] in table
        if f["path"] in expected:
            assert f["xetHash"] == expected[f["path"]] and f["xetHash"] in table
    metrics = text_of(page, "#metrics")
    assert "Deduplicated within this upload" in metrics and "Dedup ratio" in metrics
    assert result["metrics"]["dedupedBytes"] >= 2 * MIB - 128 * 1024  # the shared prefix
    assert bar_values(page, "#file-table progress") == [1] * (2 * len(files))
    assert text_of(page, "#phase") == "committed"

    # the listing (tree at main, expanded): every file, its size, the commit that wrote it
    listing = {e["path"]: e for e in demo["listing"]}
    assert set(listing) == set(files)
    for name, data in files.items():
        assert listing[name]["size"] == len(data)
        assert listing[name]["lastCommit"]["id"] == result["commitOid"]
    shown = text_of(page, "#repo-table")
    assert result["commitOid"][:8] in shown and all(name in shown for name in files)
    assert "3 file(s)" in text_of(page, "#repo-status")

    # download back and verify (xet.hub.downloadFileStream at the commit + SHA-256), with bars
    page.evaluate("""() => {
      window.__phases = [];
      const el = document.getElementById('phase');
      new MutationObserver(() => window.__phases.push(el.textContent))
        .observe(el, {childList: true, characterData: true, subtree: true});
    }""")
    page.call(lambda p: p.click("#verify"))
    assert wait_state(page, "verified", "error") == "verified", page.evaluate(
        "() => window.demo.error")
    verified = page.evaluate("() => window.demo.verified")
    assert [v["ok"] for v in verified] == [True] * len(files)
    assert text_of(page, "#file-table").count("verify OK") == len(files)
    assert bar_values(page, "#file-table td:last-child progress") == [1] * len(files)
    assert text_of(page, "#phase") == "verified: 3 of 3 file(s) match"
    shown = page.evaluate("() => window.__phases")  # never "committed"/"done" meanwhile
    assert shown[:-1] == [f"verifying: downloading {n} ({i} of 3)"
                          for i, n in enumerate(files, 1)], shown
    assert focused(page) == "verify"

    # each listed file downloads verified through its own button
    for name in ("copy-of-weights.bin", "notes.txt"):
        page.call(lambda p, n=name: p.click(f'#repo-table tr[data-path="{n}"] button'))
        assert wait_state(page, "ready", "error") == "ready", page.evaluate(
            "() => window.demo.error")
    downloads = page.evaluate("() => window.demo.downloads")
    assert downloads["copy-of-weights.bin"] == {
        "ok": True, "sha256": sha(files["copy-of-weights.bin"]),
        "size": len(files["copy-of-weights.bin"]), "how": "Xet hash and SHA-256"}  # fmt: skip
    assert downloads["notes.txt"]["ok"] and downloads["notes.txt"]["how"] == "git blob id"
    assert text_of(page, "#repo-table").count("verified (") == 2

    # the unmodified huggingface_hub (+ hf_xet) downloads what the page committed
    got = assert_ok(run_python_client(page.server, [
        {"op": "hf_hub_download", "repo_id": repo, "filename": n} for n in files
    ], tmp_path / "hf-home", page.server.dev_secret))  # fmt: skip
    assert got == [{"sha256": sha(d), "size": len(d)} for d in files.values()]

    shot = tmp_path / "demo.png"
    page.call(lambda p: p.screenshot(path=str(shot), full_page=True))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_demo_accessibility(page: DemoPage, files: dict[str, bytes]) -> None:
    """Labelled controls, live regions for the load status and the phase, named bars."""
    set_repo(page, unique("demo/aria"))
    assert choose_and_upload(page, {"weights.bin": files["weights.bin"]}) == "uploaded"
    aria = page.evaluate("""() => {
      const labelled = (id) => [...document.querySelectorAll(`label[for="${id}"]`)]
        .map((l) => l.textContent.trim());
      return {
        files: labelled('files'), cas: labelled('cas'), repo: labelled('repo'),
        secret: labelled('secret'),
        load: document.getElementById('load-status').getAttribute('aria-live'),
        phase: document.getElementById('phase').getAttribute('aria-live'),
        error: document.getElementById('error').getAttribute('role'),
        bars: [...document.querySelectorAll('progress')].map((p) => p.getAttribute('aria-label')),
      };
    }""")
    assert aria["files"] == ["Files to upload"]
    assert aria["cas"] and aria["repo"] and aria["secret"]
    assert aria["load"] == "polite" and aria["phase"] == "polite" and aria["error"] == "alert"
    # the same through Playwright's accessibility-based locators
    assert page.call(lambda p: p.get_by_label("Files to upload").count()) == 1
    assert page.call(lambda p: p.get_by_role("status").count()) >= 2
    # every bar has a name saying what it measures
    assert aria["bars"][:2] == ["Processing of weights.bin", "Upload of weights.bin"]
    assert all(b and re.match(r"(Processing|Upload|Verification|Download) of ", b)
               for b in aria["bars"]), aria["bars"]
    names = page.call(lambda p: p.eval_on_selector_all(
        "#repo-table button", "els => els.map((e) => e.getAttribute('aria-label'))"))
    assert all(n.startswith("Download and verify ") for n in names)


def test_demo_without_secret_says_a_dev_secret_is_needed(open_page: Any) -> None:
    page = open_page(secret="")
    assert page.call(lambda p: p.is_visible("#secret-missing"))
    assert "needs the server's dev secret" in text_of(page, "#secret-missing")
    assert "?secret=" in text_of(page, "#secret-missing")
    page.call(lambda p: p.fill("#secret", page.server.dev_secret))
    assert not page.call(lambda p: p.is_visible("#secret-missing"))
    # with the secret (the dev secret is the local Hub's admin token) the page works
    page.call(lambda p: p.click("#list"))
    assert wait_state(page, "ready", "error") == "ready", page.evaluate("() => window.demo.error")


def test_demo_wrong_secret_shows_the_servers_message(page: DemoPage,
                                                     files: dict[str, bytes]) -> None:
    """A 401 reads as the Hub's message, not a JSON body; focus goes to the error; the page
    recovers with the right secret."""
    secret = page.server.dev_secret
    set_repo(page, unique("demo/auth"))
    page.call(lambda p: p.fill("#secret", "wrong-secret"))
    try:
        assert choose_and_upload(page, {"notes.txt": files["notes.txt"]}) == "error"
        message = text_of(page, "#error")
        assert message.startswith("XetHubAuthError: "), message
        assert "HTTP 401" in message and '{"' not in message
        assert message.count("HTTP 401") == 1
        assert focused(page) == "error"
        assert text_of(page, "#phase").startswith("upload failed")
    finally:
        page.call(lambda p: p.fill("#secret", secret))
    assert choose_and_upload(page, {"notes.txt": files["notes.txt"]}) == "uploaded"
    assert not page.call(lambda p: p.is_visible("#error"))


def test_demo_unreachable_server_is_named(page: DemoPage) -> None:
    """A Hub URL where nothing listens: the page says the server could not be reached, with
    the CORS / mixed-content hint, and the URL once."""
    old = page.call(lambda p: p.input_value("#cas"))
    page.call(lambda p: p.fill("#cas", "http://127.0.0.1:9"))
    try:
        page.call(lambda p: p.click("#list"))
        assert wait_state(page, "error", "ready", timeout_ms=120_000) == "error"
        message = text_of(page, "#error")
        assert "the server could not be reached" in message, message
        assert "CORS" in message and "mixed content" in message
        assert message.count("127.0.0.1:9") == 1, message
        assert "Failed to fetch" in message  # what the browser said, kept as the cause
    finally:
        page.call(lambda p: p.fill("#cas", old))


FETCH_TOKEN_JS = """
async ({origin, secret}) => {
  const m = await import('/xet_pyodide.js');
  const failure = async (url, headers) => {
    try { await m.fetchToken(url, headers); return 'resolved'; }
    catch (e) { return {name: e.name, message: e.message, status: e.status, url: e.url,
                        serverMessage: e.serverMessage}; }
  };
  const good = {Authorization: 'Bearer ' + secret};
  const refresher = new m.TokenEndpointRefresher(
    `${origin}/api/models/demo/repo/xet-read-token/main?ttl=60`, good);
  console.log('refresher:', refresher);
  const token = await refresher.refreshToken();
  return {
    unauthorized: await failure(`${origin}/api/models/demo/repo/xet-write-token/main?ttl=60`,
                                {Authorization: 'Bearer wrong'}),
    notFound: await failure(`${origin}/api/models/demo/repo/xet-writ-token/main?ttl=60`, good),
    unreachable: await failure('http://127.0.0.1:9/api/models/demo/repo/xet-write-token/main',
                               good),
    refresherJson: JSON.stringify(refresher),
    refresherKeys: Object.getOwnPropertyNames(refresher),
    refresherUrl: refresher.url,
    refreshed: typeof token.token() === 'string' && refresher.calls === 1,
  };
}
"""


def test_fetch_token_errors_are_readable(page: DemoPage) -> None:
    secret = page.server.dev_secret
    out = page.evaluate(FETCH_TOKEN_JS, {"origin": page.server.url, "secret": secret})
    bad = out["unauthorized"]
    assert bad["name"] == "XetAuthError" and bad["status"] == 401
    assert bad["message"].startswith("the token endpoint refused the credentials"), bad
    assert bad["serverMessage"] and bad["serverMessage"] in bad["message"]
    assert '{"' not in bad["message"]  # the server's message, not its JSON body
    missing = out["notFound"]
    assert missing["name"] == "XetNotFoundError" and missing["status"] == 404
    assert "wrong server URL, repository or repository type" in missing["message"]
    for err in (bad, missing):
        assert "?" not in err["url"] and "ttl" not in err["message"]  # no query anywhere
        assert err["message"].count(err["url"]) == 1
    gone = out["unreachable"]
    assert gone["name"] == "XetServerError" and gone["status"] is None
    assert gone["message"].startswith("the token endpoint could not be reached")
    assert "CORS" in gone["message"] and "mixed content" in gone["message"]
    assert gone["message"].count("127.0.0.1:9") == 1
    # the refresher keeps the Hub token to itself
    assert out["refreshed"]
    assert secret not in out["refresherJson"] and "headers" not in out["refresherKeys"]
    assert out["refresherUrl"].endswith("/xet-read-token/main")  # shown without ?ttl=
    logged = [line for line in page.console if "refresher:" in line]
    assert logged and not any(secret in line for line in page.console)


def test_demo_announces_retries(page: DemoPage) -> None:
    """The storage answers the first two xorb uploads with 503: the page says so while it
    waits (what, attempt, delay, reason; no signed URL), then the upload completes. (A 503
    rather than a dropped connection: Chromium itself silently retries some of those, so
    their count would vary.)"""
    set_repo(page, unique("demo/retry"))
    page.evaluate("""() => {
      window.__retryTexts = [];
      const el = document.getElementById('retry-status');
      new MutationObserver(() => { if (el.textContent) window.__retryTexts.push(el.textContent); })
        .observe(el, {childList: true, characterData: true, subtree: true});
    }""")
    # (xorbs go through upload grants: the PUT to the grant URL is the upload)
    page.server.set_faults(endpoints={"grant_put": {"error_rate": 1.0, "status": 503,
                                                    "max_faults": 2}})
    try:
        # new bytes (the earlier tests' are on the server already: nothing would be sent)
        state = choose_and_upload(page, {"fresh.bin": b"\0" + os.urandom(3 * MIB)})
    finally:
        page.server.set_faults()
    assert state == "uploaded", page.evaluate("() => window.demo.error")
    retries = page.evaluate("() => window.demo.retries")
    assert [r["attempt"] for r in retries] == [1, 2], retries
    for r in retries:
        assert r["what"].startswith("xorb upload") and r["maxAttempts"] == 6
        assert r["delay"] > 0 and r["reason"] == "HTTP 503"
        assert "?" not in r["what"] and "http" not in r["what"]  # no (signed) URL
    texts = page.evaluate("() => window.__retryTexts")
    assert any("attempt 1 of 6 failed (HTTP 503); retrying in" in t
               for t in texts), texts
    assert text_of(page, "#retry-status") == ""  # cleared once the upload went through


def test_demo_clears_stale_state(page: DemoPage, files: dict[str, bytes], tmp_path: Path) -> None:
    """A second upload starts from a clean slate (no old statistics, commit or verdicts on
    screen while it runs); when it fails, the phase says so and no statistics remain."""
    set_repo(page, unique("demo/stale"))
    assert choose_and_upload(page, {"weights.bin": files["weights.bin"]}) == "uploaded"
    page.call(lambda p: p.click("#verify"))
    assert wait_state(page, "verified", "error") == "verified"
    assert "Dedup ratio" in text_of(page, "#metrics")

    big = tmp_path / "second.bin"
    big.write_bytes(b"\0" + random_bytes(48 * MIB, 41))
    page.server.set_faults(endpoints={"xorb_grant": {"error_rate": 1.0, "status": 400}})
    try:
        def act(p: Any) -> dict[str, Any]:
            p.set_input_files("#files", str(big))
            p.click("#upload")
            p.wait_for_function("() => window.demo.phases.includes('processing')")
            return p.evaluate("""() => ({
              metrics: document.getElementById('metrics').innerText,
              commit: document.getElementById('commit').innerText,
              table: document.getElementById('file-table').innerText,
              verified: window.demo.verified, results: window.demo.results})""")

        during = page.call(act)
        assert wait_state(page, "error", "uploaded") == "error"
    finally:
        page.server.set_faults()
    assert "Dedup ratio" not in during["metrics"] and "upload running" in during["metrics"]
    assert during["commit"] == "" and during["results"] is None and during["verified"] is None
    assert "verify OK" not in during["table"] and "weights.bin" not in during["table"]
    phase = text_of(page, "#phase")
    assert phase.startswith("upload failed while "), phase
    assert "did not complete" in text_of(page, "#metrics")
    assert text_of(page, "#error").startswith("XetServerError: xorb upload")
    assert focused(page) == "error"
    assert page.call(lambda p: p.is_disabled("#verify"))


def test_demo_upload_bar_never_runs_ahead_of_processing(page: DemoPage) -> None:
    """Upload is measured against the file's size: it never exceeds Processing, and a copy
    made of the first file's data does not reach 100 % before the data is stored."""
    set_repo(page, unique("demo/bars"))
    data = b"\0" + random_bytes(12 * MIB, 51)
    page.add_fixture("bars-a.bin", data)
    samples = page.evaluate("""async () => {
      const seen = [];
      const rows = () => [...document.querySelectorAll('#file-table tbody tr')];
      const obs = new MutationObserver(() => {
        seen.push(rows().map((tr) => [...tr.querySelectorAll('progress')].map((p) => p.value)));
      });
      obs.observe(document.getElementById('file-table'),
                  {subtree: true, attributes: true, attributeFilter: ['value'], childList: true,
                   characterData: true});
      const blob = await window.fixture('bars-a.bin');
      const dt = new DataTransfer();
      dt.items.add(new File([blob], 'a.bin'));
      dt.items.add(new File([blob], 'copy.bin'));
      const input = document.getElementById('files');
      input.files = dt.files;
      await window.demo.upload();
      obs.disconnect();
      return {seen, state: window.demo.state};
    }""")
    assert samples["state"] == "uploaded"
    seen = [s for s in samples["seen"] if len(s) == 2 and all(len(r) >= 2 for r in s)]
    assert seen
    for snapshot in seen:
        (proc_a, up_a), (proc_b, up_b) = (r[:2] for r in snapshot)
        assert up_a <= proc_a + 1e-9 and up_b <= proc_b + 1e-9, snapshot
        if up_a < 1:
            assert up_b < 1, snapshot  # the copy waits for the data it shares
    assert "out of" in text_of(page, "#bar-note") or "of the file's size" in text_of(
        page, "#bar-note")


def test_demo_cancel_stops_the_upload(page: DemoPage, files: dict[str, bytes],
                                      tmp_path: Path) -> None:
    """Cancel aborts the running upload: the page says so, the repository is unchanged, and
    the next upload works."""
    repo = unique("demo/cancel")
    set_repo(page, repo)
    assert choose_and_upload(page, {"notes.txt": files["notes.txt"]}) == "uploaded"
    head = page.evaluate("() => window.demo.results.commitOid")
    big = tmp_path / "big.bin"  # large enough to be cancelled while it is processed
    big.write_bytes(b"\0" + b"".join(random_bytes(64 * MIB, 35 + i) for i in range(4)))

    def act(p: Any) -> None:
        p.set_input_files("#files", str(big))
        p.click("#upload")
        p.wait_for_function("() => window.demo.phases.includes('processing')")
        p.click("#cancel", timeout=5000)

    page.call(act)
    assert wait_state(page, "cancelled", "uploaded", "error") == "cancelled", \
        page.evaluate("() => window.demo.error")
    assert text_of(page, "#phase") == "upload cancelled"
    assert not page.call(lambda p: p.is_visible("#error"))
    assert page.call(lambda p: p.is_disabled("#cancel"))
    assert focused(page) == "upload"
    import httpx

    r = httpx.get(f"{page.server.url}/api/models/{repo}/revision/main",
                  headers=page.server.token_headers)  # fmt: skip
    assert r.status_code == 200 and r.json()["sha"] == head  # nothing committed
    assert choose_and_upload(page, {"notes.txt": b"changed\n"}) == "uploaded"


@pytest.mark.slow
def test_demo_big_random_file_round_trip_in_a_fresh_context(
    open_page: Any, tmp_path: Path
) -> None:
    """Issue 24: the demo page in a fresh Playwright context (new_context: no on-disk
    profile, as an Incognito window) uploads BIG_MIB (1 GiB) of random bytes and downloads
    them back verified."""
    path = tmp_path / "random.bin"
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(BIG_MIB // 64):
            block = os.urandom(64 * MIB)
            digest.update(block)
            f.write(block)
    page = open_page(workers=2, repo=unique("demo/big"))
    page.call(lambda p: p.set_input_files("#files", str(path)))
    page.call(lambda p: p.click("#upload"))
    state = wait_state(page, "uploaded", "error", timeout_ms=1_800_000)
    assert state == "uploaded", page.evaluate("() => window.demo.error")
    result = page.evaluate("() => window.demo.results")
    assert result["files"][0]["size"] == BIG_MIB * MIB
    assert result["files"][0]["sha256"] == digest.hexdigest()
    page.call(lambda p: p.click("#verify"))
    state = wait_state(page, "verified", "error", timeout_ms=1_800_000)
    assert state == "verified", page.evaluate("() => window.demo.error")
    verified = page.evaluate("() => window.demo.verified")
    assert verified == [{"path": "random.bin", "ok": True, "sha256": digest.hexdigest(),
                         "size": BIG_MIB * MIB}]


def test_demo_resumes_an_upload_after_a_reload(open_page: Any, tmp_path: Path) -> None:
    """Issue 23 on the demo page: reload the page mid-upload, pick the file again: the xorbs
    the first attempt had stored are not sent again (the page's IndexedDB resume journal),
    the page says how much was resumed, and the file downloads back verified."""
    size = 512 * MIB  # eight full xorbs of random bytes
    path = tmp_path / "resumable.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    page = open_page(workers=2, repo=unique("demo/resume"))
    before = stored_state(page.server)["rows"]["xorbs"]
    page.call(lambda p: p.set_input_files("#files", str(path)))
    page.call(lambda p: p.click("#upload"))
    deadline = time.monotonic() + 600
    while stored_state(page.server)["rows"]["xorbs"] < before + 2:  # 128 MiB stored
        assert time.monotonic() < deadline, "the first attempt stored no two xorbs in 10 min"
        assert page.evaluate("() => window.demo.state") == "uploading"
        time.sleep(0.2)
    time.sleep(0.5)  # the page journals an acknowledged xorb right after the server's answer
    assert page.evaluate("() => window.demo.state") == "uploading"  # still mid-upload

    page.call(lambda p: p.reload())  # the upload dies with the page; IndexedDB stays
    page.evaluate("() => window.demo.ready.then(() => true)")
    page.call(lambda p: p.set_input_files("#files", str(path)))
    page.call(lambda p: p.click("#upload"))
    assert wait_state(page, "uploaded", "error", timeout_ms=600_000) == "uploaded", (
        page.evaluate("() => window.demo.error"))
    metrics = page.evaluate("() => window.demo.results.metrics")
    assert metrics["bytesResumed"] >= 64 * MIB  # at least one whole xorb of the first attempt
    assert metrics["xorbBytesUploaded"] <= size - metrics["bytesResumed"] + MIB
    assert "resumed" in text_of(page, "#resume-status")
    assert "of which resumed from an interrupted upload" in text_of(page, "#metrics")
    page.call(lambda p: p.click("#verify"))
    assert wait_state(page, "verified", "error", timeout_ms=600_000) == "verified"
    assert page.evaluate("() => window.demo.verified") == [
        {"path": "resumable.bin", "ok": True, "sha256": sha(data), "size": size}]
