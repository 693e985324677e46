"""``xet_pyodide.hub.HubClient`` in every runtime (CPython, Pyodide in Node, Pyodide in
Chromium) against the local Hub: one commit of an inline file and two Xet files, read back
verified; the Xet file hashes equal hf_xet's. See tests/portable/hub_checks.py.
Pyodide runs them through pytest-pyodide's ``run_in_pyodide`` (``in_pyodide`` below, the ``rt``
fixture: tests/plugins/pyodide.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import hf_xet
from pytest_pyodide import run_in_pyodide

from tests.cpython._hub_helpers import mint_token, unique
from tests.plugins.cas_server import CasServer
from tests.portable.hub_checks import spec_data

SPECS = [
    {"path": "notes.txt", "kind": "text", "size": 3000, "seed": 1},
    {"path": "w/a.bin", "kind": "random", "size": 2_000_000, "seed": 2, "binary": True},
    {"path": "w/b.bin", "kind": "random", "size": 1_500_000, "seed": 3, "binary": True},
]


@run_in_pyodide(packages=["xet-pyodide"])
async def in_pyodide(selenium, module, func, args):
    """``tests/portable/<module>.<func>(*args)`` inside Pyodide (the ``rt`` fixture calls it)."""
    import importlib
    import inspect

    result = getattr(importlib.import_module(f"tests.portable.{module}"), func)(*args)
    return (await result) if inspect.isawaitable(result) else result


def test_hub_client_in_runtime(rt, cas_server: CasServer, tmp_path: Path) -> None:
    token = mint_token(cas_server, "lena")
    repo = f"lena/{unique(rt.name)}"
    out = rt.call("hub_checks", "hub_roundtrip", cas_server.url, token, repo, SPECS)
    if rt.name != "cpython":
        assert out["platform"] == "emscripten"
    datas = {s["path"]: spec_data(s) for s in SPECS}
    for path, data in datas.items():
        (tmp_path / path.replace("/", "_")).write_bytes(data)
    refs = hf_xet.hash_files([str(tmp_path / "w_a.bin"), str(tmp_path / "w_b.bin")])
    files = out["result"]["files"]
    assert [(f["path"], f["mode"], f["sha256"]) for f in files] == [
        (p, "regular" if p == "notes.txt" else "lfs", hashlib.sha256(d).hexdigest())
        for p, d in datas.items()
    ]
    assert [f["xet_hash"] for f in files] == [None, refs[0].hash, refs[1].hash]
    assert out["downloads"] == {p: hashlib.sha256(d).hexdigest() for p, d in datas.items()}
    assert out["range_ok"] is True
    assert out["phases"][0] == "preuploading" and out["phases"][-2:] == ["committing", "done"]
    assert out["result"]["committed"] is True
