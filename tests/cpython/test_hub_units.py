"""The Hub's pure parts, without a server: names and paths, git-shaped ids, the commit
payload and how it changes a file list, the preupload verdict, tree listings."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
from xet_cas_server.hub import commits, gitobj
from xet_cas_server.hub.db import Blob, TreeEntry
from xet_cas_server.hub.errors import BadHubRequest, EntryNotFound
from xet_cas_server.hub.names import check_branch, check_path, repo_id, repo_of_claim
from xet_cas_server.hub.routes_repo import listing


@pytest.mark.parametrize("path", ["a", "a/b.c", "dir/sub/file.bin", ".gitattributes", "ü/名"])
def test_good_paths(path: str) -> None:
    assert check_path(path) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/a",
        "a/",
        "a//b",
        "..",
        "../a",
        "a/../b",
        "./a",
        "a\\b",
        "a\x00",
        "\x7f",
        ".git",
        "x/.git/y",
        "é" * 600,
        7,
        None,
    ],
)
def test_bad_paths(path: object) -> None:
    with pytest.raises(BadHubRequest):
        check_path(path)


def test_names_and_branches() -> None:
    r = repo_id("dataset", "org-1", "my.data_set")
    assert (r.id, r.url_prefix, r.web_path, r.token_claim) == (
        "org-1/my.data_set",
        "datasets/",
        "/datasets/org-1/my.data_set",
        "datasets/org-1/my.data_set",
    )
    assert repo_id("model", "a", "b").web_path == "/a/b"
    assert repo_of_claim(r.token_claim) == r  # a token's claim back to its repository
    assert repo_of_claim("models/a/b") == repo_id("model", "a", "b")
    for claim in ["buckets/a/b", "models/a", "models/a/b/c", "", "models/a/b--c"]:
        with pytest.raises(BadHubRequest):
            repo_of_claim(claim)
    for bad in [
        ("model", "a", "b--c"),
        ("model", "-a", "b"),
        ("bucket", "a", "b"),
        ("model", "a", "x" * 97),
        ("model", "a/b", "c"),
    ]:
        with pytest.raises(BadHubRequest):
            repo_id(*bad)
    assert check_branch("refs/pr/12") == "refs/pr/12" and check_branch("v1.0/fix") == "v1.0/fix"
    for bad in ["", "a..b/../c", "x.lock", "a//b", "refs/pr/0", " main"]:
        with pytest.raises(BadHubRequest):
            check_branch(bad)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_blob_ids_are_gits() -> None:
    for content in [b"", b"hello\n", bytes(range(256)) * 100]:
        git = (
            subprocess.run(
                ["git", "hash-object", "--stdin"], input=content, capture_output=True, check=True
            )
            .stdout.decode()
            .strip()
        )
        assert gitobj.blob_oid(content) == git


def test_lfs_pointer_follows_the_git_lfs_spec() -> None:
    sha = "ab" * 32
    assert gitobj.lfs_pointer(sha, 1234) == (
        b"version https://git-lfs.github.com/spec/v1\noid sha256:" + sha.encode() + b"\nsize 1234\n"
    )
    assert gitobj.pointer_oid(sha, 1234) == gitobj.blob_oid(gitobj.lfs_pointer(sha, 1234))
    assert gitobj.iso_date(1_700_000_000.25) == "2023-11-14T22:13:20.250000Z"


def test_upload_mode() -> None:
    assert commits.upload_mode(0, b"") == "regular"
    assert commits.upload_mode(100, b"text only") == "regular"
    assert commits.upload_mode(100, b"bin\x00ary") == "lfs"
    assert commits.upload_mode(commits.LFS_THRESHOLD, b"text") == "lfs"
    assert commits.upload_mode(commits.LFS_THRESHOLD - 1, b"text") == "regular"


def line(key: str, value: dict) -> bytes:
    return json.dumps({"key": key, "value": value}).encode() + b"\n"


def test_parse_commit() -> None:
    body = (
        line("header", {"summary": " Add ", "description": "why", "parentCommit": "a" * 40})
        + b"\n"
        + line("file", {"path": "t.txt", "content": base64.b64encode(b"hi").decode()})
        + line("file", {"path": "u.txt", "content": "plain", "encoding": "utf-8"})
        + line("lfsFile", {"path": "w.bin", "algo": "sha256", "oid": "c" * 64, "size": 9})
        + line("lfsFile", {"path": "copy.bin", "algo": "sha256", "oid": "c" * 64})
        + line("deletedFile", {"path": "old"})
        + line("deletedFolder", {"path": "dir/"})
    )
    header, ops = commits.parse_commit(body)
    assert header == commits.Header("Add", "why", "a" * 40)
    assert ops == [
        commits.AddInline("t.txt", b"hi"),
        commits.AddInline("u.txt", b"plain"),
        commits.AddLfs("w.bin", "c" * 64, 9),
        commits.AddLfs("copy.bin", "c" * 64, None),
        commits.Delete("old", folder=False),
        commits.Delete("dir", folder=True),
    ]
    with pytest.raises(BadHubRequest, match="inline files are limited"):
        big = base64.b64encode(bytes(commits.MAX_INLINE_FILE + 1)).decode()
        commits.parse_commit(
            line("header", {"summary": "s"}) + line("file", {"path": "a", "content": big})
        )
    with pytest.raises(BadHubRequest, match="algo"):
        commits.parse_commit(
            line("header", {"summary": "s"})
            + line("lfsFile", {"path": "a", "algo": "md5", "oid": "c" * 64})
        )


def test_apply_operations_in_order() -> None:
    files = {"a/1": "o1", "a/2": "o2", "b": "o3"}
    ops: list[commits.Operation] = [
        commits.Delete("a", folder=True),
        commits.AddInline("a", b"file now"),
        commits.AddLfs("c/big", "d" * 64, 5),
        commits.Delete("b", folder=False),
        commits.AddInline("b", b"back"),
    ]
    out = commits.apply(files, ops, {"c/big": "ptr"})
    assert out == {"a": gitobj.blob_oid(b"file now"), "c/big": "ptr", "b": gitobj.blob_oid(b"back")}
    assert files == {"a/1": "o1", "a/2": "o2", "b": "o3"}  # input untouched
    with pytest.raises(EntryNotFound):
        commits.apply(files, [commits.Delete("nope", folder=False)], {})
    with pytest.raises(EntryNotFound):
        commits.apply(files, [commits.Delete("b", folder=True)], {})  # a file, not a folder
    with pytest.raises(BadHubRequest, match="both a file and a folder"):
        commits.apply(files, [commits.AddInline("a/1/x", b"")], {})


def test_listing_direct_children_and_recursive() -> None:
    def entry(path: str, oid: str) -> TreeEntry:
        return TreeEntry(path, Blob(oid, 1, None, None), "c" * 40)

    entries = [entry(p, f"{i:040x}") for i, p in enumerate(["x", "d/a", "d/e/b", "d/e/f/c"])]
    root = listing(entries, "", recursive=False)
    assert [(i["path"], i["type"]) for i in root] == [("d", "directory"), ("x", "file")]
    sub = listing(entries[1:], "d", recursive=True)
    assert [i["path"] for i in sub] == ["d/a", "d/e", "d/e/b", "d/e/f", "d/e/f/c"]
    # a folder's id depends only on what it holds, not where it is
    moved = [entry("z/" + e.path, e.blob.oid) for e in entries]
    assert listing(moved, "z/d", recursive=False)[1]["oid"] == sub[1]["oid"]
