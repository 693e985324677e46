"""The Hub API spoken directly (httpx): shapes the clients rely on, and every bad input —
unknown content, traversal, stale parents, missing permissions, unknown repos, revisions and
files — refused in the Hub's error shape with nothing committed."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import re
import socket
from dataclasses import replace

import httpx
import pytest
from xet_cas_server.hub.gitobj import blob_oid, pointer_oid

from tests.cpython._hub_helpers import (
    assert_hub_error,
    binary,
    commit,
    create,
    head,
    hub_client,
    inline,
    lfs,
    mint_token,
    ndjson,
    sha,
    unique,
    xet_upload,
)
from tests.plugins.cas_server import CasServer, build_upload, stored_state
from xet_pyodide.core.shard import serialize_shard
from xet_pyodide.core.shard_model import Shard
from xet_pyodide.core.terms import build_file_entry

MIB = 1 << 20
OID = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def users(cas_server: CasServer) -> dict[str, str]:
    """Hub tokens: alice and bob (write), bob-read and alice-read (read)."""
    return {
        "alice": mint_token(cas_server, "alice"),
        "bob": mint_token(cas_server, "bob"),
        "alice-read": mint_token(cas_server, "alice", "read"),
        "bob-read": mint_token(cas_server, "bob", "read"),
    }


# ---------------------------------------------------------------------------- happy paths
def test_ready_line_is_pasteable(cas_server: CasServer) -> None:
    assert cas_server.hub_line == f"HF_ENDPOINT={cas_server.url} HF_TOKEN={cas_server.dev_secret}"


def test_inline_commit_tree_resolve_and_history(cas_server: CasServer, users: dict) -> None:
    server = cas_server
    repo = create(server, users["alice"], f"alice/{unique('inline')}")
    files = {"README.md": b"# hi\n", "src/a.py": b"print(1)\n", "src/deep/b.txt": b"b" * 300}
    with hub_client(server, users["alice"]) as c:
        first = head(c, repo)
        r = commit(c, repo, *(inline(p, d) for p, d in files.items()))
        assert r.status_code == 200, r.text
        oid = r.json()["commitOid"]
        assert OID.match(oid) and oid != first
        assert r.json()["commitUrl"] == f"{server.url}/{repo}/commit/{oid}"
        page = c.get(f"/{repo}/commit/{oid}").json()
        assert page["id"] == oid and page["parents"] == [first] and page["title"] == "test commit"

        for path, data in files.items():
            got = c.get(f"/{repo}/resolve/main/{path}")
            assert got.content == data and got.headers["x-repo-commit"] == oid
            assert got.headers["etag"] == f'"{blob_oid(data)}"'
            h = c.head(f"/{repo}/resolve/{oid}/{path}")
            assert h.status_code == 200 and int(h.headers["content-length"]) == len(data)
        part = c.get(f"/{repo}/resolve/main/src/deep/b.txt", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == b"b" * 10
        assert part.headers["content-range"] == "bytes 10-19/300"

        top = c.get(f"/api/models/{repo}/tree/main").json()
        assert [(i["path"], i["type"]) for i in top] == [
            ("README.md", "file"),
            ("src", "directory"),
        ]
        assert top[0]["oid"] == blob_oid(files["README.md"]) and OID.match(top[1]["oid"])
        sub = c.get(f"/api/models/{repo}/tree/main/src?expand=true").json()
        assert [i["path"] for i in sub] == ["src/a.py", "src/deep"]
        assert all(i["lastCommit"]["id"] == oid for i in sub)
        rec = c.get(f"/api/models/{repo}/tree/{oid}", params={"recursive": "true"}).json()
        assert [i["path"] for i in rec] == [
            "README.md",
            "src",
            "src/a.py",
            "src/deep",
            "src/deep/b.txt",
        ]
        info = c.post(
            f"/api/models/{repo}/paths-info/main",
            json={"paths": ["src/a.py", "src/deep", "nope"], "expand": True},
        ).json()
        assert [(i["path"], i["type"]) for i in info] == [
            ("src/a.py", "file"),
            ("src/deep", "directory"),
        ]
        form = c.post(f"/api/models/{repo}/paths-info/main", data={"paths": ["README.md"]}).json()
        assert form[0]["size"] == 5 and "lastCommit" not in form[0]

        history = c.get(f"/api/models/{repo}/commits/main").json()
        assert [h["id"] for h in history] == [oid, first]
        assert history[0]["authors"] == [{"user": "alice"}]
        repo_info = c.get(f"/api/models/{repo}").json()
        assert repo_info["sha"] == oid and repo_info["id"] == repo and not repo_info["private"]
        assert [s["rfilename"] for s in repo_info["siblings"]] == sorted(files)


def test_tree_pagination_follows_link(cas_server: CasServer, users: dict) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('many')}")
    with hub_client(cas_server, users["alice"]) as c:
        ops = [inline(f"f/{i:04d}.txt", b"%d" % i) for i in range(1203)]
        assert commit(c, repo, *ops).status_code == 200
        r = c.get(f"/api/models/{repo}/tree/main/f")
        assert len(r.json()) == 1000
        nxt = r.links["next"]["url"]
        assert nxt.startswith(cas_server.url)
        rest = c.get(nxt).json()
        assert len(rest) == 203 and rest[-1]["path"] == "f/1202.txt"
        assert "next" not in c.get(nxt).links


def test_xet_file_resolve_headers_fileinfo_and_streamed_ranges(
    cas_server: CasServer, users: dict
) -> None:
    server = cas_server
    repo = create(server, users["alice"], f"alice/{unique('xet')}")
    data = binary(700_000, 5)
    up = build_upload([data], chunk_size=40_000)
    with hub_client(server, users["alice"]) as c:
        xet_upload(c, repo, up.shard, up.xorbs)
        r = commit(c, repo, lfs("w/model.bin", data))
        assert r.status_code == 200, r.text
        oid = r.json()["commitOid"]
        h = c.head(f"/{repo}/resolve/main/w/model.bin")
        assert h.status_code == 200
        assert h.headers["x-repo-commit"] == oid
        assert h.headers["x-xet-hash"] == up.file_hashes[0]
        assert h.headers["x-linked-size"] == h.headers["content-length"] == str(len(data))
        assert h.headers["x-linked-etag"] == h.headers["etag"] == f'"{sha(data)}"'
        auth = f"{server.url}/api/models/{repo}/xet-read-token/{oid}"
        info = f"{server.url}/v2/reconstructions/{up.file_hashes[0]}"
        assert (
            h.headers["link"]
            == f'<{auth}>; rel="xet-auth", <{info}>; rel="xet-reconstruction-info"'
        )
        fi = c.get(
            f"/{repo}/resolve/main/w/model.bin",
            headers={"Range": "bytes=0-0", "Accept": "application/vnd.xet-fileinfo+json, */*"},
        )
        assert fi.headers["content-type"].startswith("application/vnd.xet-fileinfo+json")
        assert fi.json()["hash"] == up.file_hashes[0] and fi.json()["size"] == len(data)
        assert c.get(f"/{repo}/resolve/main/w/model.bin").content == data
        for spec, (a, b) in {
            "bytes=39990-120017": (39990, 120017),
            "bytes=-5": (699_995, 699_999),
            "bytes=650000-": (650_000, 699_999),
        }.items():
            part = c.get(f"/{repo}/resolve/main/w/model.bin", headers={"Range": spec})
            assert part.status_code == 206 and part.content == data[a : b + 1], spec
            assert part.headers["content-range"] == f"bytes {a}-{b}/{len(data)}"
        past = c.get(f"/{repo}/resolve/main/w/model.bin", headers={"Range": "bytes=700000-700009"})
        assert past.status_code == 416 and past.headers["content-range"] == "bytes */700000"
        entry = c.get(f"/api/models/{repo}/tree/main/w").json()[0]
        pointer = (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha(data)}\nsize 700000\n"
        )
        assert entry["lfs"] == {"oid": sha(data), "size": len(data), "pointerSize": len(pointer)}
        assert entry["oid"] == pointer_oid(sha(data), len(data))
        assert c.post(
            f"/api/models/{repo}/preupload/main",
            json={"files": [{"path": "w/model.bin", "size": len(data), "sample": ""}]},
        ).json()["files"][0]["oid"] == sha(data)


def test_xet_tokens_carry_the_repository(cas_server: CasServer, users: dict) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('tok')}", private=True)
    with hub_client(cas_server, users["alice"]) as c:
        for scope in ("read", "write"):
            r = c.get(f"/api/models/{repo}/xet-{scope}-token/main")
            assert r.status_code == 200
            token = r.json()["accessToken"]
            assert r.headers["x-xet-access-token"] == token
            assert int(r.headers["x-xet-token-expiration"]) == r.json()["exp"]
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
            assert claims["repo"] == f"models/{repo}" and claims["rev"] == "main"
            assert claims["scope"] == scope
        # huggingface_hub's create_pr quirk: the revision arrives as "None"
        assert c.get(f"/api/models/{repo}/xet-write-token/None?create_pr=1").status_code == 200
    # the dev secret still gets tokens for names that are no Hub repository (the CAS's
    # token endpoint before the Hub); a Hub token does not
    legacy = "/api/models/under_score/a--b/xet-write-token/main"
    with hub_client(cas_server, cas_server.dev_secret) as c:
        assert c.get(legacy).status_code == 200
    with hub_client(cas_server, users["bob"]) as c:
        assert_hub_error(c.get(legacy), 404, "RepoNotFound")
        assert_hub_error(c.get(f"/api/models/{repo}/xet-read-token/main"), 404, "RepoNotFound")
    with hub_client(cas_server, None) as c:
        assert_hub_error(c.get(f"/api/models/{repo}/xet-read-token/main"), 401, "RepoNotFound")


def test_branches_and_pull_requests(cas_server: CasServer, users: dict) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('br')}")
    with hub_client(cas_server, users["alice"]) as c:
        base = head(c, repo)
        assert c.post(f"/api/models/{repo}/branch/dev", json={}).status_code == 200
        assert_hub_error(c.post(f"/api/models/{repo}/branch/dev", json={}), 409)
        r = commit(c, repo, inline("dev.txt", b"dev"), branch="dev")
        assert r.status_code == 200 and head(c, repo) == base  # main did not move
        pr = commit(c, repo, inline("pr.txt", b"pr"), create_pr="1")
        assert pr.json()["pullRequestUrl"] == f"{cas_server.url}/{repo}/discussions/1"
        refs = c.get(f"/api/models/{repo}/refs").json()
        assert {b["name"]: b["targetCommit"] for b in refs["branches"]} == {
            "dev": r.json()["commitOid"],
            "main": base,
        }
        assert refs["pullRequests"] == [
            {"name": "refs/pr/1", "ref": "refs/pr/1", "targetCommit": pr.json()["commitOid"]}
        ]
        assert c.get(f"/{repo}/resolve/refs%2Fpr%2F1/pr.txt").content == b"pr"
        assert c.get(f"/api/models/{repo}/tree/refs%2Fpr%2F1").json()[0]["path"] == "pr.txt"
        assert commit(c, repo, inline("pr2.txt", b"2"), branch="refs/pr/1").status_code == 200
        assert c.delete(f"/api/models/{repo}/branch/dev").status_code == 200
        assert_hub_error(c.get(f"/{repo}/resolve/dev/dev.txt"), 404, "RevisionNotFound")
        assert_hub_error(c.delete(f"/api/models/{repo}/branch/main"), 403)


def test_deletes_files_and_folders(cas_server: CasServer, users: dict) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('del')}")
    with hub_client(cas_server, users["alice"]) as c:
        ops = [inline(p, b"x") for p in ("a/1", "a/2", "a/b/3", "keep", "z")]
        assert commit(c, repo, *ops).status_code == 200
        r = commit(
            c,
            repo,
            ("deletedFolder", {"path": "a/"}),
            ("deletedFile", {"path": "z"}),
            inline("a", b"now a file"),
        )
        assert r.status_code == 200, r.text
        assert [i["path"] for i in c.get(f"/api/models/{repo}/tree/main").json()] == ["a", "keep"]


# ---------------------------------------------------------------------------- bad input
def test_lfs_file_with_unknown_sha256_commits_nothing(cas_server: CasServer, users: dict) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('unk')}")
    with hub_client(cas_server, users["alice"]) as c:
        before = head(c, repo)
        r = commit(c, repo, inline("ok.txt", b"fine"), lfs("weights/never-uploaded.bin", b"?" * 99))
        assert "weights/never-uploaded.bin" in assert_hub_error(r, 422)
        assert head(c, repo) == before
        assert len(c.get(f"/api/models/{repo}/commits/main").json()) == 1
        assert_hub_error(c.get(f"/{repo}/resolve/main/ok.txt"), 404, "EntryNotFound")


def test_sha256_claims_are_checked_and_completed(cas_server: CasServer, users: dict) -> None:
    """A shard's sha256 is the uploader's claim: a false one cannot name other content, and a
    file first registered without sha256 becomes committable once a shard brings it."""
    repo = create(cas_server, users["alice"], f"alice/{unique('claim')}")
    real, other = binary(300_000, 41), binary(300_000, 42)
    with hub_client(cas_server, users["alice"]) as c:
        up = build_upload([real])
        lie = up.shard_model.files[0]
        lying = Shard([replace(lie, sha256=hashlib.sha256(other).digest())], up.shard_model.xorbs)
        xet_upload(c, repo, serialize_shard(lying), up.xorbs)
        assert_hub_error(commit(c, repo, lfs("other.bin", other)), 422)

        plain = build_upload([binary(200_000, 43)])
        bare = Shard([replace(plain.shard_model.files[0], sha256=None)], plain.shard_model.xorbs)
        xet_upload(c, repo, serialize_shard(bare), plain.xorbs)
        data = binary(200_000, 43)
        assert_hub_error(commit(c, repo, lfs("late.bin", data)), 422)
        xet_upload(c, repo, plain.shard, [])  # same file, now with its sha256
        assert commit(c, repo, lfs("late.bin", data)).status_code == 200
        assert c.get(f"/{repo}/resolve/main/late.bin").content == data


def test_commit_uses_the_proof_hashed_during_the_upload(cas_server: CasServer, users: dict) -> None:
    """A file uploaded in order through one write token is proven from the SHA-256 hashed as
    its xorbs arrived (hub/early.py): the commit rebuilds nothing. A file whose terms are not
    the order its xorbs went up in is rebuilt and proven all the same. Both proofs start when
    the shard registers the file; the commits take their results."""
    repo = create(cas_server, users["alice"], f"alice/{unique('early')}")
    data = binary(3 * MIB + 5, 51)
    with hub_client(cas_server, users["alice"]) as c:
        before = cas_server.stats()
        up = build_upload([data])
        xet_upload(c, repo, up.shard, up.xorbs)
        assert commit(c, repo, lfs("early.bin", data)).status_code == 200
        after = cas_server.stats()
        assert after["sha256_proofs_streamed"] - before["sha256_proofs_streamed"] == 1
        assert after["sha256_proofs_rebuilt"] == before["sha256_proofs_rebuilt"]
        assert after["sha256_proofs_ahead"] - before["sha256_proofs_ahead"] == 1
        assert c.get(f"/{repo}/resolve/main/early.bin").content == data

        a, b = binary(2 * MIB + 7, 52), binary(MIB + 3, 53)
        two = build_upload([a, b])
        xa, xb = two.xorbs
        swapped = build_file_entry(
            [*xb.chunk_hashes, *xa.chunk_hashes],
            [*xb.chunk_sizes, *xa.chunk_sizes],
            [*((xb.hash, k) for k in range(xb.num_chunks)),
             *((xa.hash, k) for k in range(xa.num_chunks))],
            hashlib.sha256(b + a).digest(),
        )  # fmt: skip
        xet_upload(c, repo, serialize_shard(Shard([swapped], two.shard_model.xorbs)), two.xorbs)
        assert commit(c, repo, lfs("swapped.bin", b + a)).status_code == 200
        last = cas_server.stats()
        assert last["sha256_proofs_rebuilt"] - after["sha256_proofs_rebuilt"] == 1
        assert last["sha256_proofs_streamed"] == after["sha256_proofs_streamed"]
        assert last["sha256_proofs_ahead"] - after["sha256_proofs_ahead"] == 1
        assert c.get(f"/{repo}/resolve/main/swapped.bin").content == b + a


BAD_PATHS = [
    "../escape",
    "/abs/path",
    "a/../../b",
    "a\\b",
    "nul\x00byte",
    "a//b",
    "./x",
    ".git/config",
    "dir/",
    "",
    "tab\there",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_path_traversal_refused(cas_server: CasServer, users: dict, path: str) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('trav')}")
    with hub_client(cas_server, users["alice"]) as c:
        before = head(c, repo)
        assert_hub_error(commit(c, repo, inline("fine.txt", b"ok"), inline(path, b"x")), 400)
        assert_hub_error(
            commit(c, repo, ("lfsFile", {"path": path, "oid": "0" * 64, "size": 1})), 400
        )
        assert_hub_error(commit(c, repo, ("deletedFile", {"path": path})), 400)
        r = c.post(
            f"/api/models/{repo}/preupload/main",
            json={"files": [{"path": path, "size": 1, "sample": ""}]},
        )
        assert_hub_error(r, 400)
        assert head(c, repo) == before


def test_stale_parent_commit_is_a_conflict(cas_server: CasServer, users: dict) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('race')}")
    with hub_client(cas_server, users["alice"]) as c:
        first = head(c, repo)
        second = commit(c, repo, inline("a", b"1"), parent=first).json()["commitOid"]
        assert "not at the given parentCommit" in assert_hub_error(
            commit(c, repo, inline("b", b"2"), parent=first), 409
        )
        assert head(c, repo) == second

        def racer(i: int) -> int:
            with hub_client(cas_server, users["alice"]) as c2:
                return commit(c2, repo, inline(f"r{i}", b"r"), parent=second).status_code

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = sorted(pool.map(racer, range(4)))
        assert statuses == [200, 409, 409, 409]
        assert len(c.get(f"/api/models/{repo}/commits/main").json()) == 3


def test_permissions(cas_server: CasServer, users: dict) -> None:
    server = cas_server
    pub = create(server, users["alice"], f"alice/{unique('pub')}")
    priv = create(server, users["alice"], f"alice/{unique('priv')}", private=True)
    with hub_client(server, users["bob"]) as bob:
        assert bob.get(f"/api/models/{pub}/tree/main").status_code == 200
        assert "rights" in assert_hub_error(commit(bob, pub, inline("x", b"x")), 403)
        assert_hub_error(bob.post(f"/api/models/{pub}/preupload/main", json={"files": []}), 403)
        assert_hub_error(bob.get(f"/api/models/{pub}/xet-write-token/main"), 403)
        batch = {"operation": "upload", "transfers": ["xet"], "objects": []}
        assert_hub_error(bob.post(f"/{pub}.git/info/lfs/objects/batch", json=batch), 403)
        assert_hub_error(bob.get(f"/api/models/{priv}/tree/main"), 404, "RepoNotFound")
        assert_hub_error(bob.get(f"/{priv}/resolve/main/x"), 404, "RepoNotFound")
        r = bob.post("/api/repos/create", json={"name": "mine", "organization": "alice"})
        assert_hub_error(r, 403)
    for name in ("alice-read", "bob-read"):
        with hub_client(server, users[name]) as c:
            assert_hub_error(commit(c, pub, inline("x", b"x")), 403)
    with hub_client(server, users["alice-read"]) as c:
        assert c.get(f"/api/models/{priv}/tree/main").status_code == 200
    with hub_client(server, None) as anon:
        assert anon.get(f"/api/models/{pub}").status_code == 200
        assert_hub_error(anon.get(f"/api/models/{priv}"), 401, "RepoNotFound")
        assert_hub_error(commit(anon, pub, inline("x", b"x")), 401)
        assert_hub_error(anon.post("/api/repos/create", json={"name": "x"}), 401)
        assert_hub_error(anon.get("/api/whoami-v2"), 401)
    with hub_client(server, "hf_not_a_real_token") as fake:
        msg = assert_hub_error(fake.get(f"/api/models/{pub}"), 401)
        assert msg == "Invalid credentials in Authorization header"
    with hub_client(server, server.dev_secret) as admin:
        assert admin.get(f"/api/models/{priv}/tree/main").status_code == 200
        assert commit(admin, priv, inline("by-admin", b"a")).status_code == 200
        assert admin.get("/api/whoami-v2").json()["name"] == "admin"
    with hub_client(server, users["bob"]) as bob:
        assert bob.get("/api/whoami-v2").json()["auth"]["accessToken"]["role"] == "write"


def test_unknown_repo_revision_and_entry(cas_server: CasServer, users: dict) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('nf')}")
    with hub_client(cas_server, users["alice"]) as c:
        assert_hub_error(c.get("/api/models/alice/does-not-exist"), 404, "RepoNotFound")
        assert_hub_error(c.get("/alice/does-not-exist/resolve/main/x"), 404, "RepoNotFound")
        assert_hub_error(c.get(f"/api/datasets/{repo}"), 404, "RepoNotFound")  # it is a model
        assert_hub_error(c.get(f"/api/models/{repo}/revision/nope"), 404, "RevisionNotFound")
        assert_hub_error(c.get(f"/api/models/{repo}/tree/{'ab' * 20}"), 404, "RevisionNotFound")
        assert_hub_error(commit(c, repo, inline("x", b"x"), branch="nope"), 404, "RevisionNotFound")
        assert_hub_error(c.head(f"/{repo}/resolve/main/missing.bin"), 404, "EntryNotFound")
        assert_hub_error(c.get(f"/{repo}/resolve/main/missing.bin"), 404, "EntryNotFound")
        r = commit(c, repo, ("deletedFile", {"path": "missing.bin"}))
        assert "doesn't exist" in assert_hub_error(r, 404, "EntryNotFound")
        assert_hub_error(c.get(f"/api/models/{repo}/tree/main/missing"), 404, "EntryNotFound")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json\n", "not valid JSON"),
        (b'{"key": "file", "value": {}}\n', "first line"),
        (ndjson({"description": "no summary"}), "summary"),
        (ndjson({"summary": "s", "parentCommit": "main"}), "parentCommit"),
        (ndjson({"summary": "s"}, ("renamedFile", {"path": "a"})), "unknown operation"),
        (ndjson({"summary": "s"}, ("file", {"path": "a", "content": "***"})), "base64"),
        (ndjson({"summary": "s"}, ("lfsFile", {"path": "a", "oid": "xyz", "size": 1})), "sha256"),
        (ndjson({"summary": "s"}, ("lfsFile", {"path": "a", "oid": "0" * 64, "size": -1})), "size"),
        (
            ndjson({"summary": "s"}, inline("a", b"1"), inline("a/b", b"2")),
            "both a file and a folder",
        ),
        (b"", "empty"),
    ],
)
def test_malformed_commits(cas_server: CasServer, users: dict, body: bytes, fragment: str) -> None:
    repo = create(cas_server, users["alice"], f"alice/{unique('bad')}")
    with hub_client(cas_server, users["alice"]) as c:
        before = head(c, repo)
        r = c.post(f"/api/models/{repo}/commit/main", content=body)
        assert fragment in assert_hub_error(r, 400)
        assert head(c, repo) == before


def test_commit_payload_limit(cas_server: CasServer, users: dict) -> None:
    """A payload announced over 64 MiB is refused before its body is read."""
    repo = create(cas_server, users["alice"], f"alice/{unique('big')}")
    request = (
        f"POST /api/models/{repo}/commit/main HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {users['alice']}\r\nContent-Length: {65 * MIB}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", cas_server.port), timeout=30) as sock:
        sock.sendall(request.encode())
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "exceeds the limit" in answer


def test_lfs_batch_xet_and_basic_transfers(cas_server: CasServer, users: dict) -> None:
    server = cas_server
    repo = create(server, users["alice"], f"alice/{unique('batch')}")
    data, known = binary(150_000, 61), binary(150_000, 62)
    with hub_client(server, users["alice"]) as c:
        up = build_upload([known])
        xet_upload(c, repo, up.shard, up.xorbs)
        assert commit(c, repo, lfs("known.bin", known)).status_code == 200
        objects = [
            {"oid": sha(data), "size": len(data)},
            {"oid": sha(known), "size": len(known)},
            {"oid": sha(b""), "size": 0},
        ]
        xet = c.post(
            f"/{repo}.git/info/lfs/objects/batch",
            json={
                "operation": "upload",
                "transfers": ["basic", "multipart", "xet"],
                "hash_algo": "sha_256",
                "ref": {"name": "main"},
                "objects": objects,
            },
        ).json()
        assert xet["transfer"] == "xet"
        new, have, empty = xet["objects"]
        assert (
            new["actions"]["upload"]["href"]
            == f"{server.url}/api/models/{repo}/xet-write-token/main"
        )
        header = new["actions"]["upload"]["header"]
        assert header["X-Xet-Cas-Url"] == server.url and header["X-Xet-Access-Token"].startswith(
            "xcas1."
        )
        assert "actions" not in have and empty["error"]["code"] == 422

        basic = c.post(
            f"/{repo}.git/info/lfs/objects/batch",
            json={
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": objects[:1],
            },
        ).json()
        assert basic["transfer"] == "basic"
        href = basic["objects"][0]["actions"]["upload"]["href"]
        state = stored_state(server)
        assert_hub_error(httpx.put(href, content=data[:-1] + b"!"), 400)  # wrong sha256
        assert_hub_error(httpx.put(href, content=data[:-1]), 400)  # short
        assert_hub_error(httpx.put(href.replace("sig=", "sig=x"), content=data), 401)
        assert stored_state(server) == state  # nothing kept of the refused bodies
        assert httpx.put(href, content=data).status_code == 200  # no token: the URL is signed
        assert commit(c, repo, lfs("put.bin", data)).status_code == 200
        assert c.get(f"/{repo}/resolve/main/put.bin").content == data


def test_admin_token_minting_needs_the_dev_secret(cas_server: CasServer, users: dict) -> None:
    for token in (None, users["alice"]):
        with hub_client(cas_server, token) as c:
            assert (
                c.post("/api/_admin/tokens", json={"user": "eve", "role": "write"}).status_code
                == 401
            )
    with hub_client(cas_server, cas_server.dev_secret) as c:
        assert_hub_error(c.post("/api/_admin/tokens", json={"user": "eve", "role": "owner"}), 400)
        assert_hub_error(c.post("/api/_admin/tokens", json={"user": "../eve", "role": "read"}), 400)
