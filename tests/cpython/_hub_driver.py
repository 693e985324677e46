"""Run huggingface_hub (unmodified, with hf_xet) against a local Hub, in a child process.

Usage: ``python tests/cpython/_hub_driver.py`` with a JSON list of operations on stdin; prints
one JSON list of results on stdout. The environment (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``
…) is set by :func:`tests.cpython._hub_helpers.run_python_client`; huggingface_hub reads it at
import time, which is why this runs in its own process. Before anything else the driver checks
that the client's endpoint is the local server.

Operations (``op`` plus arguments) and their results:

* ``create_repo`` (repo_id, repo_type, private, exist_ok) → the repo URL
* ``upload_file`` (path, path_in_repo, repo_id, repo_type) → commit oid
* ``upload_folder`` (folder, repo_id, repo_type) → commit oid
* ``create_commit`` (repo_id, repo_type, adds: [[local, in_repo]], deletes: [path],
  parent_commit?, create_pr?) → ``{oid, pr_url}``
* ``hf_hub_download`` (repo_id, repo_type, filename, revision?) → ``{sha256, size}``
* ``snapshot_download`` (repo_id, repo_type, revision?) → ``{path: sha256}``
* ``list_repo_files`` / ``list_repo_commits`` / ``repo_info`` (repo_id, repo_type, revision?)

A failing operation yields ``{"error": <class>, "status": <HTTP status or null>, "message"}``
and the following ones still run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _run(api: Any, hub: Any, op: dict[str, Any]) -> Any:
    name = op.pop("op")
    repo = {"repo_id": op["repo_id"], "repo_type": op.get("repo_type")}
    if name == "create_repo":
        return str(
            api.create_repo(
                **repo, private=op.get("private", False), exist_ok=op.get("exist_ok", False)
            )
        )
    if name == "upload_file":
        return api.upload_file(
            path_or_fileobj=op["path"], path_in_repo=op["path_in_repo"], **repo
        ).oid
    if name == "upload_folder":
        return api.upload_folder(folder_path=op["folder"], **repo).oid
    if name == "create_commit":
        ops = [
            hub.CommitOperationAdd(path_in_repo=dst, path_or_fileobj=src)
            for src, dst in op.get("adds", [])
        ]
        ops += [hub.CommitOperationDelete(path_in_repo=p) for p in op.get("deletes", [])]
        info = api.create_commit(
            operations=ops,
            commit_message=op.get("message", "update"),
            parent_commit=op.get("parent_commit"),
            create_pr=op.get("create_pr", False),
            **repo,
        )
        return {"oid": info.oid, "pr_url": info.pr_url}
    if name == "hf_hub_download":
        path = hub.hf_hub_download(filename=op["filename"], revision=op.get("revision"), **repo)
        return {"sha256": _sha256(path), "size": os.path.getsize(path)}
    if name == "snapshot_download":
        root = Path(hub.snapshot_download(revision=op.get("revision"), **repo))
        return {
            str(p.relative_to(root)): _sha256(p) for p in sorted(root.rglob("*")) if p.is_file()
        }
    if name == "list_repo_files":
        return api.list_repo_files(revision=op.get("revision"), **repo)
    if name == "list_repo_commits":
        return [c.commit_id for c in api.list_repo_commits(revision=op.get("revision"), **repo)]
    if name == "repo_info":
        info = api.repo_info(revision=op.get("revision"), **repo)
        return {
            "sha": info.sha,
            "private": info.private,
            "files": sorted(s.rfilename for s in info.siblings),
        }
    raise ValueError(f"unknown operation {name!r}")


def main() -> None:
    import huggingface_hub as hub
    from huggingface_hub import constants

    endpoint = os.environ["HF_ENDPOINT"]
    # nothing may reach a real Hub: the client must be pointed at the local server
    if endpoint != constants.ENDPOINT or not endpoint.startswith("http://127.0.0.1:"):
        raise SystemExit(f"huggingface_hub endpoint is {constants.ENDPOINT!r}, not {endpoint!r}")
    api = hub.HfApi()
    results = []
    for op in json.load(sys.stdin):
        try:
            results.append(_run(api, hub, dict(op)))
        except Exception as exc:
            response = getattr(exc, "response", None)
            status = getattr(response, "status_code", None)
            results.append(
                {"error": type(exc).__name__, "status": status, "message": str(exc)[:2000]}
            )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
