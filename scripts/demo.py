"""The main job: the local server (Hub API + CAS) serves the demo page; headless Chromium uses
it for real.

Starts ``xet_cas_server`` on 127.0.0.1 with ``--web web`` (the demo page, cross-origin
isolated), prints the page URL, then drives that page in headless Chromium (Playwright,
Debian's ``/usr/bin/chromium``) as a user would: the page lists the repository ``demo/repo``
(empty at first), three generated files are chosen and committed in one commit
(``xet.hub.uploadFiles``: the two large files through Xet, with dedup; the small text file
inline), the page shows the commit id and link, lists the files again (sizes, last commit),
"download back and verify" fetches each file from that commit (``xet.hub.downloadFile``,
checked against its Xet hash and SHA-256), and a listed file is downloaded through its own
button. Cross-checks: hf_xet 1.8.0 computes the same Xet hashes for the same files, and the
unmodified huggingface_hub (with hf_xet) downloads what the page committed, byte-identical.
Exits non-zero if anything disagrees.

Usage: ``python scripts/demo.py [--serve] [--size-mib N] [--port P]``. ``--serve`` keeps the
server running afterwards so you can open the printed URL yourself (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.cpython._hub_helpers import run_python_client  # noqa: E402
from tests.plugins.cas_server import CasServer  # noqa: E402  (also puts cas_server/ on the path)
from tests.plugins.runtimes import BrowserThread, ensure_wheel_fresh  # noqa: E402

MIB = 1 << 20
SHOT = REPO / ".cache" / "demo" / "demo.png"
HUB_REPO = "demo/repo"


def make_files(directory: Path, size_mib: int) -> list[Path]:
    """A float-like "model", a copy sharing most of its bytes (dedup), and a small text file.
    The models start with a NUL byte, as real weight files do: the Hub sends binary files to
    Xet whatever their size; the text file goes inline in the commit."""
    rng = random.Random(2024)
    n = size_mib * MIB
    model = bytearray(rng.randbytes(n))
    model[3::4] = bytes(model[3::4]).translate(bytes((b & 0x80) | 0x3C for b in range(256)))
    model[0] = 0
    files = {
        "model.bin": bytes(model),
        "model-finetuned.bin": bytes(model[: n * 3 // 4]) + rng.randbytes(n // 4),
        "README.txt": b"A demo of Xet uploads from the browser.\n" * 200,
    }
    out = []
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        out.append(path)
    return out


def wait_state(page: Any, states: list[str], timeout_s: float) -> str:
    page.wait_for_function("s => s.includes(window.demo.state)", arg=states,
                           timeout=timeout_s * 1000)
    return str(page.evaluate("() => window.demo.state"))


def drive_page(browser: Any, url: str, paths: list[Path]) -> dict[str, Any]:
    """Runs on the browser thread: everything a user would do, via the page's UI."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        started = time.monotonic()
        page.goto(url)
        page.evaluate("() => window.demo.ready.then(() => true)")
        out: dict[str, Any] = {"load_s": time.monotonic() - started,
                               "status": page.inner_text("#load-status"),
                               "listed_before": page.inner_text("#repo-status")}
        page.set_input_files("#files", [str(p) for p in paths])
        started = time.monotonic()
        page.click("#upload")
        out["upload_state"] = wait_state(page, ["uploaded", "error"], 600)
        out["upload_s"] = time.monotonic() - started
        out["demo"] = page.evaluate(
            "() => ({phases: window.demo.phases, results: window.demo.results,"
            " listing: window.demo.listing, error: window.demo.error,"
            " retries: window.demo.retries})")
        out["commit_text"] = page.inner_text("#commit")
        out["listed_after"] = page.inner_text("#repo-status")
        if out["upload_state"] == "uploaded":
            started = time.monotonic()
            page.click("#verify")
            out["verify_state"] = wait_state(page, ["verified", "error"], 600)
            out["verify_s"] = time.monotonic() - started
            out["verified"] = page.evaluate("() => window.demo.verified")
            name = paths[1].name  # a listed file, through its own button
            page.click(f'#repo-table tr[data-path="{name}"] button')
            wait_state(page, ["ready", "error"], 600)
            out["listed_download"] = page.evaluate(f"() => window.demo.downloads[{name!r}]")
            out["error"] = page.evaluate("() => window.demo.error")
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOT), full_page=True)
        out["console_errors"] = [c for c in console if c.startswith("error")]
        return out
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep serving after the run")
    parser.add_argument("--size-mib", type=int, default=24, help="size of the demo 'model'")
    parser.add_argument("--port", type=int, default=0, help="CAS server port (0: any free)")
    args = parser.parse_args(argv)

    ensure_wheel_fresh()
    ok = True
    with tempfile.TemporaryDirectory(prefix="xet-demo-") as tmp:
        root = Path(tmp)
        server = CasServer(root / "cas-data", web=REPO / "web", port=args.port).start()
        try:
            url = f"{server.url}/index.html?secret={server.dev_secret}&repo={HUB_REPO}"
            print(f"local Hub + CAS server and the demo page: {url}", flush=True)
            (root / "files").mkdir()
            paths = make_files(root / "files", args.size_mib)
            browser = BrowserThread()
            try:
                run = browser.call(lambda b: drive_page(b, url, paths))
            finally:
                browser.close()
            ok = report(run, paths, server, root)
            if args.serve:
                signal.signal(signal.SIGTERM, _interrupt)  # stop cleanly on kill/timeout too
                print(f"serving {url} — press Ctrl-C to stop", flush=True)
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
        finally:
            server.close()
    print("demo:", "OK" if ok else "FAILED", flush=True)
    return 0 if ok else 1


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def report(run: dict[str, Any], paths: list[Path], server: CasServer, root: Path) -> bool:
    import hf_xet

    print(f"page: {run['status']} (opened in {run['load_s']:.1f} s)")
    print(f"repository before the upload: {run['listed_before']}")
    demo = run["demo"]
    if run["upload_state"] != "uploaded":
        print(f"upload FAILED: {demo['error']}")
        return False
    results = demo["results"]
    data = {p.name: p.read_bytes() for p in paths}
    large = [p for p in paths if p.suffix == ".bin"]
    reference = {p.name: info.hash for p, info in zip(
        large, hf_xet.hash_files([str(p) for p in large]), strict=True)}
    ok = bool(results["committed"])
    print(f"committed {len(results['files'])} files in {run['upload_s']:.1f} s: "
          f"{run['commit_text']}")
    print(f"phases: {' -> '.join(demo['phases'])}"
          + (f"; {len(demo['retries'])} retried request(s)" if demo["retries"] else ""))
    for f in results["files"]:
        sha_ok = f["sha256"] == hashlib.sha256(data[f["path"]]).hexdigest()
        ok &= sha_ok
        if f["path"] in reference:
            hash_ok = f["xetHash"] == reference[f["path"]]
            ok &= hash_ok and f["mode"] == "lfs"
            print(f"  {f['path']:22} {f['size']:>10} B  xet {f['xetHash']}"
                  f"  ({'= hf_xet' if hash_ok else 'DIFFERS from hf_xet'})")
        else:
            print(f"  {f['path']:22} {f['size']:>10} B  {f['mode']} (inline in the commit)")
        print(f"  {'':22} {'':>12}  sha256 {f['sha256']} ({'OK' if sha_ok else 'WRONG'})")
    m = results["metrics"]
    print(f"metrics: through Xet {m['totalBytes']} B, new {m['newBytes']} B, deduplicated "
          f"{m['dedupedBytes']} B in-upload + {m['dedupedBytesGlobal']} B global; "
          f"{m['xorbsUploaded']} xorb(s) = {m['xorbBytesUploaded']} B sent, "
          f"shard {m['shardBytesUploaded']} B")
    listing = {e["path"]: e for e in demo["listing"] or []}
    listed_ok = set(listing) == set(data) and all(
        listing[n]["size"] == len(d) and listing[n]["lastCommit"]["id"] == results["commitOid"]
        for n, d in data.items())
    ok &= listed_ok
    print(f"repository after the upload: {run['listed_after']} "
          f"({'sizes and last commit match' if listed_ok else 'LISTING WRONG'})")
    verified = run.get("verified") or []
    verify_ok = run.get("verify_state") == "verified" and len(verified) == len(paths) and all(
        v["ok"] for v in verified)
    ok &= verify_ok
    if verify_ok:
        print(f"download back and verify (xet.hub.downloadFile at the commit + SHA-256): "
              f"{len(verified)}/{len(paths)} verify OK in {run['verify_s']:.1f} s")
    else:
        print(f"download back and verify FAILED: {run.get('error') or verified}")
    listed = run.get("listed_download") or {}
    ok &= bool(listed.get("ok"))
    print(f"download of a listed file ({paths[1].name}) through its button: "
          f"{'verified (' + listed['how'] + ')' if listed.get('ok') else f'FAILED {listed}'}")
    got = run_python_client(server, [
        {"op": "hf_hub_download", "repo_id": HUB_REPO, "filename": n} for n in data
    ], root / "hf-home", server.dev_secret)  # fmt: skip
    same = got == [{"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                   for d in data.values()]
    ok &= same
    print(f"huggingface_hub hf_hub_download (hf_xet) of the committed files: "
          f"{'byte-identical' if same else f'DIFFERENT: {got}'}")
    # Global-dedup queries for unknown chunks answer 404 by protocol; the browser logs each.
    misses = [c for c in run["console_errors"] if "status of 404" in c]
    others = [c for c in run["console_errors"] if c not in misses]
    if misses:
        print(f"({len(misses)} HTTP 404 in the page console: global-dedup misses and the "
              f"first listing of a repository that did not exist yet, expected)")
    if others:
        print(f"page console errors: {others[:5]}")
    print(f"screenshot: {SHOT.relative_to(REPO)}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
