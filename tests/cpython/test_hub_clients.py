"""The real Hub clients, unmodified, against the local server's Hub API.

huggingface_hub 2.4.0 + hf_xet 1.8.0 (Python, child processes) and @huggingface/hub 2.17.5
(Node) create repositories, upload, commit, list and download byte-identical, through Xet and
through the plain LFS ``basic`` transfer (``HF_HUB_DISABLE_XET=1``), and each downloads what
the other committed. Chromium is in ``tests/browser/test_hub_browser.py``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.cpython._hub_helpers import (
    assert_ok,
    binary,
    mint_token,
    offline_env,
    run_node_client,
    run_python_client,
    unique,
    write_tree,
)
from tests.plugins.cas_server import CasServer

MIB = 1 << 20


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def requests_by_endpoint(server: CasServer) -> dict[str, int]:
    return dict(server.stats()["requests"])


def delta(before: dict[str, int], after: dict[str, int], endpoint: str) -> int:
    return after.get(endpoint, 0) - before.get(endpoint, 0)


def tree(
    server: CasServer, repo: str, token: str | None = None, kind: str = "models"
) -> dict[str, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token or server.dev_secret}"}
    r = httpx.get(f"{server.url}/api/{kind}/{repo}/tree/main?recursive=true", headers=headers)
    assert r.status_code == 200, r.text
    return {item["path"]: item for item in r.json() if item["type"] == "file"}


def folder_files(seed: int) -> dict[str, bytes]:
    """Small text files (committed inline) and binary ones (Xet), two sharing most bytes."""
    weights = binary(3 * MIB, seed)
    return {
        "README.md": b"# a model\n\nweights for tests\n",
        "config.json": b'{"hidden": 64, "layers": 2}\n',
        "weights/model.bin": weights,
        "weights/model-v2.bin": weights[: 2 * MIB] + binary(MIB // 2, seed + 1),
        "data/tiny.bin": binary(5000, seed + 2),
    }


def test_huggingface_hub_through_xet(cas_server: CasServer, tmp_path: Path) -> None:
    server = cas_server
    token = mint_token(server, "alice")
    repo = f"alice/{unique('xet')}"
    files = folder_files(seed=100)
    src = write_tree(tmp_path / "src", files)
    single = tmp_path / "single.txt"
    single.write_bytes(b"one file on its own\n")
    updated = {"config.json": b'{"hidden": 128}\n', "weights/new.bin": binary(2 * MIB, 107)}
    write_tree(tmp_path / "upd", updated)
    before = requests_by_endpoint(server)

    results = assert_ok(
        run_python_client(
            server,
            [
                {"op": "create_repo", "repo_id": repo},
                {"op": "create_repo", "repo_id": repo, "exist_ok": True},  # 409 → accepted
                {
                    "op": "upload_file",
                    "repo_id": repo,
                    "path": str(single),
                    "path_in_repo": "single.txt",
                },
                {"op": "upload_folder", "repo_id": repo, "folder": str(src)},
                {"op": "list_repo_files", "repo_id": repo},
                {"op": "snapshot_download", "repo_id": repo},
                {
                    "op": "create_commit",
                    "repo_id": repo,
                    "message": "second",
                    "adds": [[str(tmp_path / "upd" / p), p] for p in updated],
                    "deletes": ["README.md", "weights/model-v2.bin"],
                },
                {"op": "hf_hub_download", "repo_id": repo, "filename": "weights/new.bin"},
                {"op": "hf_hub_download", "repo_id": repo, "filename": "config.json"},
                {"op": "snapshot_download", "repo_id": repo},
                {"op": "list_repo_files", "repo_id": repo},
                {"op": "list_repo_commits", "repo_id": repo},
                {"op": "repo_info", "repo_id": repo},
            ],
            tmp_path / "hf-home",
            token,
        )
    )

    url, again, one, folder, listed, snap1, second = results[:7]
    new_bin, config, snap2, listed2, commits, info = results[7:]
    assert url == again == f"{server.url}/{repo}"
    first_files = {"single.txt": b"one file on its own\n", **files}
    assert sorted(listed) == sorted(first_files)
    assert snap1 == {p: sha(d) for p, d in first_files.items()}
    assert new_bin == {"sha256": sha(updated["weights/new.bin"]), "size": 2 * MIB}
    assert config == {"sha256": sha(updated["config.json"]), "size": len(updated["config.json"])}
    final = {p: d for p, d in first_files.items() if p not in ("README.md", "weights/model-v2.bin")}
    final.update(updated)
    assert snap2 == {p: sha(d) for p, d in final.items()}
    assert sorted(listed2) == sorted(final)
    assert commits[:3] == [second["oid"], folder, one] and len(commits) == 4
    assert info["sha"] == second["oid"] and info["files"] == sorted(final)

    # binary files went to Xet, text files inline; and the client used Xet, not LFS PUTs
    listing = tree(server, repo, token)
    for path, data in final.items():
        is_xet = data.startswith(b"\0")
        assert (listing[path].get("xetHash") is not None) == is_xet, path
        assert listing[path]["size"] == len(data)
        if is_xet:
            assert listing[path]["lfs"]["oid"] == sha(data)
    after = requests_by_endpoint(server)
    assert delta(before, after, "hub_lfs_put") == delta(before, after, "hub_lfs_batch") == 0
    assert delta(before, after, "shard_v2") >= 2
    assert delta(before, after, "reconstruction_v2") >= 3  # downloads went through Xet


def test_huggingface_hub_through_lfs_basic(cas_server: CasServer, tmp_path: Path) -> None:
    """``HF_HUB_DISABLE_XET=1``: uploads are PUT whole (the server chunks them into Xet),
    downloads are plain GETs the server reconstructs. A dataset repository (``datasets/``
    paths); the dev secret is the token."""
    server = cas_server
    repo = f"admin-org/{unique('lfs')}"
    files = folder_files(seed=200)
    src = write_tree(tmp_path / "src", files)
    replacement, single = binary(MIB + 12345, 207), binary(300_000, 208)
    (tmp_path / "replacement.bin").write_bytes(replacement)
    (tmp_path / "single.bin").write_bytes(single)
    before = requests_by_endpoint(server)
    home = tmp_path / "hf-home"
    ds = {"repo_id": repo, "repo_type": "dataset"}

    results = assert_ok(
        run_python_client(
            server,
            [
                {"op": "create_repo", **ds},
                {
                    "op": "upload_file",
                    **ds,
                    "path": str(tmp_path / "single.bin"),
                    "path_in_repo": "single.bin",
                },
                {"op": "upload_folder", **ds, "folder": str(src)},
                {
                    "op": "create_commit",
                    **ds,
                    "adds": [[str(tmp_path / "replacement.bin"), "weights/model.bin"]],
                    "deletes": ["data/tiny.bin"],
                },
                {"op": "snapshot_download", **ds},
                {"op": "hf_hub_download", **ds, "filename": "weights/model-v2.bin"},
                {"op": "list_repo_files", **ds},
            ],
            home,
            server.dev_secret,
            xet=False,
        )
    )

    assert results[0] == f"{server.url}/datasets/{repo}"
    final = {p: d for p, d in files.items() if p != "data/tiny.bin"}
    final.update({"weights/model.bin": replacement, "single.bin": single})
    assert results[4] == {p: sha(d) for p, d in final.items()}
    assert results[5]["sha256"] == sha(files["weights/model-v2.bin"])
    assert sorted(results[6]) == sorted(final)
    after = requests_by_endpoint(server)
    # 1 single file + 3 binaries in the folder + 1 replacement, each PUT once; no CAS traffic
    assert delta(before, after, "hub_lfs_put") == 5
    for endpoint in ("xorb_upload", "xorb_grant", "shard_v1", "shard_v2", "reconstruction_v2"):
        assert delta(before, after, endpoint) == 0, endpoint
    listing = tree(server, repo, kind="datasets")
    assert listing["weights/model.bin"]["lfs"]["oid"] == sha(replacement)
    assert listing["weights/model.bin"]["xetHash"]


def test_hfjs_node_and_the_cross_matrix(cas_server: CasServer, tmp_path: Path) -> None:
    """@huggingface/hub in Node uploads and downloads (a Space: ``spaces/`` paths); what it
    committed, huggingface_hub downloads (through Xet and as plain GETs), and it downloads what
    huggingface_hub committed through Xet and through LFS basic."""
    server = cas_server
    carol, dave = mint_token(server, "carol"), mint_token(server, "dave")
    js_repo, py_repo = f"carol/{unique('js')}", f"dave/{unique('py')}"
    js_files = {
        "notes.txt": b"written by @huggingface/hub\n",
        "blobs/a.bin": binary(2 * MIB + 3, 300),
        "blobs/b.bin": binary(MIB, 301),
    }
    write_tree(tmp_path / "js", js_files)
    py_xet = {"xet.bin": binary(MIB + 77, 310), "py.txt": b"from python\n"}
    py_lfs = {"lfs.bin": binary(MIB + 99, 311)}
    write_tree(tmp_path / "py", py_xet)
    write_tree(tmp_path / "pylfs", py_lfs)
    before = requests_by_endpoint(server)

    js = run_node_client(
        server,
        [
            {"op": "createRepo", "repo": js_repo, "repoType": "space"},
            {
                "op": "uploadFiles",
                "repo": js_repo,
                "repoType": "space",
                "files": [[str(tmp_path / "js" / p), p] for p in js_files],
            },
            *(
                {"op": "downloadFile", "repo": js_repo, "repoType": "space", "path": p}
                for p in js_files
            ),
            {"op": "downloadFile", "repo": js_repo, "repoType": "space", "path": "missing.bin"},
            {"op": "listFiles", "repo": js_repo, "repoType": "space"},
            {
                "op": "downloadFileToCacheDir",
                "repo": js_repo,
                "repoType": "space",
                "path": "blobs/a.bin",
                "cacheDir": str(tmp_path / "js-cache"),
            },
        ],
        carol,
    )
    assert_ok(js)
    assert js[0] == f"{server.url}/spaces/{js_repo}"
    assert js[2:5] == [{"sha256": sha(d), "size": len(d)} for d in js_files.values()]
    assert js[5] is None  # 404 EntryNotFound → null
    listed = {f["path"]: (f["type"], f["size"]) for f in js[6]}
    assert listed == {
        "blobs": ("directory", 0),
        **{p: ("file", len(d)) for p, d in js_files.items()},
    }
    assert js[7] == {"sha256": sha(js_files["blobs/a.bin"])}
    after = requests_by_endpoint(server)
    # it uploaded through the CAS: xorbs, and one v1 shard per large file
    assert delta(before, after, "xorb_upload") >= 1 and delta(before, after, "shard_v1") == 2

    # huggingface_hub reads what the JS client committed: Xet, then plain GETs
    got = assert_ok(
        run_python_client(
            server,
            [
                {"op": "snapshot_download", "repo_id": js_repo, "repo_type": "space"},
                {"op": "create_repo", "repo_id": py_repo},
                {"op": "upload_folder", "repo_id": py_repo, "folder": str(tmp_path / "py")},
            ],
            tmp_path / "home1",
            dave,
        )
    )
    assert got[0] == {p: sha(d) for p, d in js_files.items()}
    got = assert_ok(
        run_python_client(
            server,
            [
                {
                    "op": "hf_hub_download",
                    "repo_id": js_repo,
                    "repo_type": "space",
                    "filename": "blobs/a.bin",
                },
                {"op": "upload_folder", "repo_id": py_repo, "folder": str(tmp_path / "pylfs")},
            ],
            tmp_path / "home2",
            dave,
            xet=False,
        )
    )
    assert got[0]["sha256"] == sha(js_files["blobs/a.bin"])

    # the JS client reads what huggingface_hub committed through Xet and through LFS basic
    js = assert_ok(
        run_node_client(
            server,
            [{"op": "downloadFile", "repo": py_repo, "path": p} for p in [*py_xet, *py_lfs]],
            carol,
        )
    )
    assert js == [{"sha256": sha(d), "size": len(d)} for d in [*py_xet.values(), *py_lfs.values()]]


def test_the_printed_line_works_in_front_of_hf_upload(
    cas_server: CasServer, tmp_path: Path
) -> None:
    """What the server prints at start, pasted in front of the ``hf`` command line."""
    line = cas_server.hub_line
    assert line == f"HF_ENDPOINT={cas_server.url} HF_TOKEN={cas_server.dev_secret}"
    files = {"a.txt": b"hello\n", "w/b.bin": binary(MIB, 500)}
    write_tree(tmp_path / "up", files)
    hf = str(Path(sys.executable).with_name("hf"))
    env = offline_env(
        {
            **dict(part.split("=", 1) for part in line.split()),
            "HF_HOME": str(tmp_path / "home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }
    )
    repo = f"me/{unique('cli')}"
    for argv in (
        [hf, "upload", repo, str(tmp_path / "up")],
        [hf, "download", repo, "--local-dir", str(tmp_path / "down")],
    ):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for path, data in files.items():
        assert (tmp_path / "down" / path).read_bytes() == data
