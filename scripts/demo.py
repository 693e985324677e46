"""The main job: the local CAS server serves the demo page; headless Chromium uses it for real.

Starts ``xet_cas_server`` on 127.0.0.1 with ``--web web`` (the demo page, cross-origin
isolated), prints the page URL, then drives that page in headless Chromium (Playwright,
Debian's ``/usr/bin/chromium``): chooses three generated files, uploads them (one commit),
prints the hashes, SHA-256s and dedup metrics the page shows, clicks "download back and verify"
and prints its verdict. The results are cross-checked with hf_xet 1.8.0 (file hashes of the same
files, and a download of what the page uploaded). Exits non-zero if anything disagrees.

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

from tests.plugins.cas_server import CasServer  # noqa: E402  (also puts cas_server/ on the path)
from tests.plugins.runtimes import BrowserThread, ensure_wheel_fresh  # noqa: E402

MIB = 1 << 20
SHOT = REPO / ".cache" / "demo" / "demo.png"


def make_files(directory: Path, size_mib: int) -> list[Path]:
    """A float-like "model", a copy sharing most of its bytes (dedup), and a small text file."""
    rng = random.Random(2024)
    n = size_mib * MIB
    model = bytearray(rng.randbytes(n))
    model[3::4] = bytes(model[3::4]).translate(bytes((b & 0x80) | 0x3C for b in range(256)))
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
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        started = time.monotonic()
        page.goto(url)
        page.wait_for_function("() => window.demo && window.demo.state !== 'loading'",
                               timeout=180_000)
        out: dict[str, Any] = {"load_s": time.monotonic() - started,
                               "status": page.inner_text("#load-status")}
        page.set_input_files("#files", [str(p) for p in paths])
        started = time.monotonic()
        page.click("#upload")
        out["upload_state"] = wait_state(page, ["uploaded", "error"], 600)
        out["upload_s"] = time.monotonic() - started
        out["demo"] = page.evaluate(
            "() => ({phases: window.demo.phases, results: window.demo.results,"
            " error: window.demo.error, refreshes: window.demo.refreshes})")
        if out["upload_state"] == "uploaded":
            started = time.monotonic()
            page.click("#verify")
            out["verify_state"] = wait_state(page, ["verified", "error"], 600)
            out["verify_s"] = time.monotonic() - started
            out["verified"] = page.evaluate("() => window.demo.verified")
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
            url = f"{server.url}/index.html?secret={server.dev_secret}"
            print(f"CAS server + demo page: {url}", flush=True)
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
    demo = run["demo"]
    if run["upload_state"] != "uploaded":
        print(f"upload FAILED: {demo['error']}")
        return False
    results = demo["results"]
    reference = {p.name: info.hash for p, info in zip(
        paths, hf_xet.hash_files([str(p) for p in paths]), strict=True)}
    ok = True
    print(f"uploaded {len(results['files'])} files in {run['upload_s']:.1f} s; "
          f"phases: {' -> '.join(demo['phases'])}")
    for f in results["files"]:
        path = next(p for p in paths if p.name == f["name"])
        sha_ok = f["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        hash_ok = f["fileHash"] == reference[f["name"]]
        ok &= sha_ok and hash_ok
        print(f"  {f['name']:22} {f['fileSize']:>10} B  xet {f['fileHash']}"
              f"  ({'= hf_xet' if hash_ok else 'DIFFERS from hf_xet'})")
        print(f"  {'':22} {'':>12}  sha256 {f['sha256']} ({'OK' if sha_ok else 'WRONG'})")
    m = results["metrics"]
    print(f"metrics: total {m['totalBytes']} B, new {m['newBytes']} B, deduplicated "
          f"{m['dedupedBytes']} B in-upload + {m['dedupedBytesGlobal']} B global; "
          f"{m['xorbsUploaded']} xorb(s) = {m['xorbBytesUploaded']} B sent, "
          f"shard {m['shardBytesUploaded']} B")
    verified = run.get("verified") or []
    verify_ok = run.get("verify_state") == "verified" and len(verified) == len(paths) and all(
        v["ok"] for v in verified)
    ok &= verify_ok
    if verify_ok:
        print(f"download back and verify (downloadToBlob + WebCrypto SHA-256): "
              f"{len(verified)}/{len(paths)} verify OK in {run['verify_s']:.1f} s")
    else:
        print(f"download back and verify FAILED: {run.get('error') or verified}")
    items = [{"hash": f["fileHash"], "size": f["fileSize"], "dest": root / "hf" / f["name"]}
             for f in results["files"]]
    (root / "hf").mkdir()
    server.hf_download(items, hf_home=root / "hf-home")
    same = all(Path(i["dest"]).read_bytes() == (root / "files" / Path(i["dest"]).name
                                                ).read_bytes() for i in items)
    ok &= same
    print(f"hf_xet download of the uploaded files: {'byte-identical' if same else 'DIFFERENT'}")
    # Global-dedup queries for unknown chunks answer 404 by protocol; the browser logs each.
    misses = [c for c in run["console_errors"] if "status of 404" in c]
    others = [c for c in run["console_errors"] if c not in misses]
    if misses:
        print(f"({len(misses)} HTTP 404 in the page console: global-dedup misses, expected)")
    if others:
        print(f"page console errors: {others[:5]}")
    print(f"screenshot: {SHOT.relative_to(REPO)}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
