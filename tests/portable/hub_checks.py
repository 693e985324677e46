"""The Hub client (``xet_pyodide.hub``) run unchanged in CPython, Pyodide-in-Node and
Pyodide-in-Chromium; the CPython side (``tests/cpython/test_hub_client_portable.py``) starts
the local Hub and checks what was committed. Data is generated on both sides from small specs
(:func:`spec_data`; stdlib only: this module is copied alone into the Pyodide runtimes)."""

from __future__ import annotations

import hashlib
import random
import sys
from typing import Any


def spec_data(spec: dict[str, Any]) -> bytes:
    """The file of a spec (``kind``: ``random`` bytes, or ``text`` lines); ``"binary": true``
    puts a NUL byte first (the Hub then sends the file to Xet whatever its size)."""
    rng = random.Random(spec["seed"])
    size = spec["size"]
    if spec["kind"] == "text":
        data = b"".join(b"line %d of the notes\n" % i for i in range(size // 10 + 1))[:size]
    else:
        data = rng.randbytes(size)
    return b"\0" + data[1:] if spec.get("binary") else data


async def hub_roundtrip(hub_url: str, token: str, repo: str, specs: list[dict]) -> dict[str, Any]:
    """Create ``repo``, commit ``specs`` (``{"path", "kind", "size", "seed"}``) with
    ``HubClient.upload_files``, download every file back (and a range of the last one)."""
    from xet_pyodide.hub import HubClient
    from xet_pyodide.kernels import load_kernels

    await load_kernels()
    files = [(s["path"], spec_data(s)) for s in specs]
    phases: list[str] = []

    def on_progress(event: dict[str, Any]) -> None:
        if not phases or phases[-1] != event["phase"]:
            phases.append(event["phase"])

    async with HubClient(hub_url, token) as hub:
        await hub.create_repo(repo)
        result = await hub.upload_files(repo, files, progress=on_progress)
        downloads = {}
        for path, _ in files:
            downloads[path] = hashlib.sha256(await hub.download_file(repo, path)).hexdigest()
        last_path, last = files[-1]
        ranged = await hub.download_file(repo, last_path, byte_range=(1000, 1999))
    return {
        "platform": sys.platform,
        "result": result.to_dict(),
        "phases": phases,
        "downloads": downloads,
        "range_ok": ranged == last[1000:2000],
    }
