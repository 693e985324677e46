"""@huggingface/hub 2.17.5, unmodified, in headless Chromium against the local Hub.

The page is served by the server itself (``--web``) as ``http://localhost:PORT`` and talks to
the Hub at its public URL, ``http://127.0.0.1:PORT`` (the URLs the server hands out, Xet's
``casUrl`` included, are that one, whatever ``Host`` a request carried): another origin, so
every call goes through CORS (preflights, exposed ``X-Xet-*`` / ``Link`` / ``X-Linked-Size``
headers) as it would from any site. The client's browser build is bundled with esbuild from
``node_modules`` when the test starts; nothing bundled is committed. The page runs the same
operations as the Node test (``tests/node/hfjs_ops.mjs``); huggingface_hub then downloads what
the browser committed, and the browser downloads what huggingface_hub committed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import requires_browser, web_server
from tests.cpython._hub_helpers import (
    assert_ok,
    binary,
    mint_token,
    run_python_client,
    sha,
    unique,
    write_tree,
)
from tests.plugins.cas_server import CasServer
from tests.plugins.runtimes import REPO, BrowserThread

pytestmark = requires_browser

MIB = 1 << 20

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>@huggingface/hub in the browser</title>
<script type="module">
import * as hub from "./hub.mjs";
import { runOps } from "./ops.mjs";
const hex = (buf) =>
  Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
const io = {
  readBlob: async (name) => {
    const r = await fetch("/_fixtures/" + encodeURIComponent(name));
    if (!r.ok) throw new Error(`fixture ${name}: HTTP ${r.status}`);
    return r.blob();
  },
  sha256: async (buf) => hex(await crypto.subtle.digest("SHA-256", buf)),
};
window.hfjs = { run: (spec) => runOps(hub, spec, spec.ops, io) };
window.hfjsReady = true;
</script>
"""


@pytest.fixture(scope="module")
def hub_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CasServer]:
    root = tmp_path_factory.mktemp("hub-web")
    web = root / "web"
    (web / "_fixtures").mkdir(parents=True)
    (web / "hfjs").mkdir()
    subprocess.run(
        [
            str(REPO / "node_modules" / ".bin" / "esbuild"),
            str(REPO / "node_modules" / "@huggingface" / "hub" / "dist" / "browser" / "index.mjs"),
            "--bundle",
            "--format=esm",
            "--platform=browser",
            "--log-level=warning",
            f"--outfile={web / 'hfjs' / 'hub.mjs'}",
        ],
        check=True,
    )
    (web / "hfjs" / "ops.mjs").symlink_to(REPO / "tests" / "node" / "hfjs_ops.mjs")
    (web / "hfjs" / "index.html").write_text(PAGE)
    with web_server(root, web) as server:
        yield server


def run_in_page(chromium: BrowserThread, server: CasServer, spec: dict[str, Any]) -> list[Any]:
    console: list[str] = []

    def go(browser: Any) -> list[Any]:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
            # another origin than the Hub's (server.url, its public URL)
            page.goto(f"{server.url.replace('127.0.0.1', 'localhost')}/hfjs/index.html")
            page.wait_for_function("() => window.hfjsReady === true")
            assert page.evaluate("() => crossOriginIsolated")
            return page.evaluate("spec => window.hfjs.run(spec)", spec)
        finally:
            context.close()

    results = chromium.call(go, timeout=300)
    errors = [r for r in results if isinstance(r, dict) and "error" in r]
    assert not errors, (errors, console[-20:])
    return results


def test_hfjs_in_chromium_and_the_cross_matrix(
    chromium: BrowserThread, hub_web: CasServer, tmp_path: Path
) -> None:
    server = hub_web
    erin = mint_token(server, "erin")
    web_repo, py_repo = f"erin/{unique('web')}", f"erin/{unique('py')}"
    files = {
        "readme.txt": b"committed from a web page\n",
        "w/a.bin": binary(2 * MIB + 5, 400),
        "w/b.bin": binary(MIB, 401),
    }
    for name, data in files.items():
        (server.web_root / "_fixtures" / name.replace("/", "__")).write_bytes(data)  # type: ignore[attr-defined]
    py_files = {"py/x.bin": binary(MIB + 3, 402), "py/notes.md": b"# from python\n"}
    write_tree(tmp_path / "py", py_files)
    assert_ok(
        run_python_client(
            server,
            [
                {"op": "create_repo", "repo_id": py_repo},
                {"op": "upload_folder", "repo_id": py_repo, "folder": str(tmp_path / "py")},
            ],
            tmp_path / "home",
            erin,
        )
    )
    before = server.stats()["requests"]

    hub_url = server.url  # the page is on localhost: another origin
    results = run_in_page(
        chromium,
        server,
        {
            "hubUrl": hub_url,
            "accessToken": erin,
            "ops": [
                {"op": "createRepo", "repo": web_repo},
                {
                    "op": "uploadFiles",
                    "repo": web_repo,
                    "files": [[name.replace("/", "__"), name] for name in files],
                },
                *({"op": "downloadFile", "repo": web_repo, "path": p} for p in files),
                *({"op": "downloadFile", "repo": py_repo, "path": p} for p in py_files),
                {"op": "listFiles", "repo": web_repo},
            ],
        },
    )

    assert results[0] == f"{hub_url}/{web_repo}"
    downloads = results[2 : 2 + len(files) + len(py_files)]
    expected = [*files.values(), *py_files.values()]
    assert downloads == [{"sha256": sha(d), "size": len(d)} for d in expected]
    listed = {f["path"]: f for f in results[-1] if f["type"] == "file"}
    assert {p: f["size"] for p, f in listed.items()} == {p: len(d) for p, d in files.items()}
    assert listed["w/a.bin"]["xetHash"] and listed["readme.txt"]["xetHash"] is None
    preflights = [e for e in server.request_log() if e["method"] == "OPTIONS"]
    assert any(e["path"].endswith("/commit/main") and e["status"] == 200 for e in preflights)
    after = server.stats()["requests"]
    assert after.get("shard_v1", 0) - before.get("shard_v1", 0) == 2  # uploaded through Xet
    assert after.get("reconstruction_v2", 0) > before.get("reconstruction_v2", 0)

    # huggingface_hub reads the browser's commit
    got = assert_ok(
        run_python_client(
            server,
            [
                {"op": "snapshot_download", "repo_id": web_repo},
            ],
            tmp_path / "home2",
            erin,
        )
    )
    assert got[0] == {p: sha(d) for p, d in files.items()}
