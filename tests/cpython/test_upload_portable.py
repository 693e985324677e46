"""Our upload session in every runtime (CPython, Pyodide in Node, Pyodide in Chromium) against
the local CAS server, verified with hf_xet: file hashes equal ``hf_xet.hash_files`` and
hf_xet downloads every file byte-identical. See tests/portable/upload_checks.py.
Pyodide runs them through pytest-pyodide's ``run_in_pyodide`` (``in_pyodide`` below, the ``rt``
fixture: tests/plugins/pyodide.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_pyodide import run_in_pyodide

from tests.portable.upload_checks import make_data

if TYPE_CHECKING:
    from tests.plugins.cas_server import CasServer


MB = 1_000_000


def verify_with_hf_xet(
    server: CasServer, specs: list[dict], result: dict, tmp: Path
) -> list[bytes]:
    """hash_files on the regenerated data equals our hashes; hf_xet downloads equal the data."""
    import hf_xet

    datas = [make_data(s["kind"], s["size"], s["seed"]) for s in specs]
    paths = []
    for i, data in enumerate(datas):
        paths.append(tmp / f"src-{i}")
        paths[-1].write_bytes(data)
    expected = [info.hash for info in hf_xet.hash_files([str(p) for p in paths])]
    files = result["files"]
    assert [f["hash"] for f in files] == expected
    assert [f["size"] for f in files] == [len(d) for d in datas]
    assert [f["sha256"] for f in files] == [hashlib.sha256(d).hexdigest() for d in datas]
    items = [
        {"hash": f["hash"], "size": f["size"], "dest": tmp / f"dl-{i}"}
        for i, f in enumerate(files)
        if f["size"]
    ]
    server.hf_download(items, hf_home=tmp / "hf-dl")
    for item in items:
        index = int(Path(item["dest"]).name.split("-")[1])
        assert Path(item["dest"]).read_bytes() == datas[index], f"file {index} differs"
    return datas


@run_in_pyodide(packages=["xet-pyodide"])
async def in_pyodide(selenium, module, func, args):
    """``tests/portable/<module>.<func>(*args)`` inside Pyodide (the ``rt`` fixture calls it)."""
    import importlib
    import inspect

    result = getattr(importlib.import_module(f"tests.portable.{module}"), func)(*args)
    return (await result) if inspect.isawaitable(result) else result


SPECS = [
    {"name": "empty", "kind": "random", "size": 0, "seed": 1},
    {"name": "one", "kind": "random", "size": 1, "seed": 2},
    {"name": "small", "kind": "text", "size": 8191, "seed": 3},
    {"name": "two-chunks", "kind": "zeros", "size": 131_073, "seed": 4},
    {"name": "random", "kind": "random", "size": 3 * MB, "seed": 5, "stream": 700_001},
    {"name": "repetitive", "kind": "repetitive", "size": 4 * MB, "seed": 6},
    {"name": "floats", "kind": "floats", "size": 3 * MB, "seed": 7, "stream": 1 << 20},
]


def test_upload_in_runtime_then_hf_xet_download(rt, cas_server_factory, tmp_path: Path) -> None:
    server = cas_server_factory()
    token, exp = server.token("write")
    result = rt.call("upload_checks", "upload_files", server.url, token, exp, SPECS)
    if rt.name != "cpython":
        assert result["platform"] == "emscripten" and result["kernels"] == "wasm/js"
    assert result["phases"][0] == "processing" and result["phases"][-1] == "done"
    m = result["metrics"]
    assert m["total_bytes"] == sum(s["size"] for s in SPECS)
    assert m["new_bytes"] + m["deduped_bytes"] + m["deduped_bytes_global"] == m["total_bytes"]
    stats = server.stats()
    assert stats["xorb_bytes_received"] == m["xorb_bytes_uploaded"] > 0
    assert stats["statuses"]["shard_v2"] == {"200": 1}
    assert stats["requests"].get("xorb_upload", 0) == 0  # grant flow, like hf_xet
    verify_with_hf_xet(server, SPECS, result, tmp_path)


def test_larger_upload_with_token_refresh(rt, cas_server_factory, tmp_path: Path) -> None:
    """~20 MB (Node/CPython; 8 MB in Chromium), tokens from the token endpoint that expire
    within the refresh margin, so the refresher is used during the upload."""
    size = 8 * MB if rt.name == "chrome" else 20 * MB
    specs = [
        {"name": "big", "kind": "random", "size": size, "seed": 11, "stream": 3 * MB},
        {"name": "big-floats", "kind": "floats", "size": size // 4, "seed": 12},
    ]
    server = cas_server_factory()
    token, exp = server.token("write", ttl=20)  # inside the 30 s margin: refresh at once
    options = {
        "refresh_url": server.token_url("write", ttl=3600),
        "refresh_headers": server.token_headers,
    }
    result = rt.call("upload_checks", "upload_files", server.url, token, exp, specs, options)
    assert result["refreshes"] >= 1
    assert server.stats()["requests"]["token"] >= 2  # ours (fixture) + the refresher's
    verify_with_hf_xet(server, specs, result, tmp_path)


def test_default_transport(rt, cas_server) -> None:
    info = rt.call(
        "upload_checks", "transport_roundtrip", f"{cas_server.url}/v1/chunks/default/{'0' * 64}"
    )
    expected = "HttpxTransport" if rt.name == "cpython" else "PyfetchTransport"
    assert info["transport"] == expected and info["browser"] == (rt.name != "cpython")
    assert info["status"] == 401  # no token: the server refuses, the transport just reports
    assert info["same_body"] and info["refused"] == "TransportError"


def test_js_token_shapes(selenium) -> None:
    result = in_pyodide(selenium, "upload_checks", "js_token_shapes", [])
    assert result == {
        "method": ["m-token", 1900000000, "int"],
        "getter": ["g-token", 1900000001],
        "refresher": ["r1", 2000000000],
        "function": ["fn-token", 2000000001],
    }


def test_js_progress_callback(selenium) -> None:
    assert in_pyodide(selenium, "upload_checks", "js_progress_callback", []) == {
        "seen": ["processing:1:a"]
    }


MIB = 1 << 20


def test_sha256_chain_around_block_edges(rt) -> None:
    """The file SHA-256 chained link by link (``io/pool_sha.py``, as the pool's workers run it
    from the shared buffer; here the kernels stand in for the workers) equals hashlib's for
    sizes around the 64-byte and block edges: empty, 1, 63, 64, a block, block ± 1, a block
    plus a short tail read on the page, several blocks, a block size that is no multiple of 64
    (links with head bytes) and pieces smaller than one SHA-256 block."""
    # [seed, size, block, slot_min, fail_at, cancel_after]
    cases = [
        [1, 0, 4 * MIB, MIB, None, None],
        [2, 1, 4 * MIB, MIB, None, None],
        [3, 63, 4 * MIB, 0, None, None],
        [4, 64, 4 * MIB, 0, None, None],
        [5, 4 * MIB, 4 * MIB, MIB, None, None],
        [6, 4 * MIB + 1, 4 * MIB, MIB, None, None],
        [7, 4 * MIB - 1, 4 * MIB, MIB, None, None],
        [8, 4 * MIB + 700_000, 4 * MIB, MIB, None, None],
        [9, 3 * 4 * MIB + 12_345, 4 * MIB, MIB, None, None],
        [10, 3 * MIB + 12_345, 1_000_003, 1000, None, None],
        [11, 200, 7, 0, None, None],
    ]
    results = rt.call("upload_checks", "sha256_chains", cases)
    for case, result in zip(cases, results, strict=True):
        seed, size = case[:2]
        expected = hashlib.sha256(make_data("random", size, seed)).hexdigest()
        assert result["digest"] == expected, case
        assert result["freed"] and result["ended"], case
    links = [r["links"] for r in results]
    # slot pieces go to links of whole 64-byte blocks (head + length), the rest stays pending
    assert links[0] == links[1] == links[2] == []  # nothing in a slot, or < 64 bytes
    assert [tuple(x) for x in links[3]] == [(0, 64)]
    assert [tuple(x) for x in links[4]] == [(0, 4 * MIB)]
    assert [tuple(x) for x in links[6]] == [(0, 4 * MIB - 64)]
    assert [tuple(x) for x in links[8]] == [(0, 4 * MIB)] * 3  # + 12,345 bytes on the page
    assert [tuple(x) for x in links[9][:3]] == [(0, 1_000_000), (3, 999_997), (6, 999_994)]


def test_sha256_chain_failure_and_cancel(rt) -> None:
    """A failing link fails the digest with the worker's typed error and posts nothing after
    it; a digest cancelled mid-file (an abandoned upload) stops the chain. Either way every
    slot is freed and the chain's task ends."""
    cases = [[21, 5 * MIB, MIB, MIB, 3, None], [22, 5 * MIB, MIB, MIB, None, 2]]
    failed, cancelled = rt.call("upload_checks", "sha256_chains", cases)
    assert failed["error"] == "XetKernelError: hashing worker failed: link failed (test)"
    assert len(failed["links"]) == 3
    assert cancelled["digest"] == "cancelled" and len(cancelled["links"]) <= 2
    for result in (failed, cancelled):
        assert result["freed"] and result["ended"], result
