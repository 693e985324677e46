"""``python -m xet_pyodide hub upload|download``: Hub repositories from the command line.

    python -m xet_pyodide hub upload REPO PATH... [-m MSG] [--branch B] [--create]
    python -m xet_pyodide hub download REPO PATH OUT [--revision R] [--cache-dir DIR]

``--hub-url`` defaults to ``HF_ENDPOINT`` (else https://huggingface.co) and ``--token`` to
``HF_TOKEN``, as the Hub's own tools do. ``upload``: each PATH is a file (committed under its
name) or a directory (its files, under their paths relative to it; ``.git`` is left out), all
in one commit. ``download`` writes OUT only once the file is complete and verified. Both print
one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hub_command", required=True, metavar="{upload,download}")
    up = sub.add_parser("upload", help="commit local files to a repository (one commit)")
    up.add_argument("repo", metavar="REPO", help="namespace/name (or datasets/…, spaces/…)")
    up.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to commit")
    up.add_argument("-m", "--commit-message", help="commit title (default: Upload N files)")
    up.add_argument("--description", default="", help="commit description")
    up.add_argument("--branch", default="main", help="branch to commit to (default: main)")
    up.add_argument("--parent-commit", help="refuse (conflict) if the branch moved past it")
    up.add_argument("--create", action="store_true", help="create the repository if missing")
    down = sub.add_parser("download", help="download one file of a repository, verified")
    down.add_argument("repo", metavar="REPO", help="namespace/name (or datasets/…, spaces/…)")
    down.add_argument("path", metavar="PATH", help="the file's path in the repository")
    down.add_argument("out", metavar="OUT", help="where to write it")
    down.add_argument("--revision", default="main", help="branch, refs/pr/N or commit id")
    down.add_argument("--cache-dir", help="keep fetched xorb ranges in this directory")
    for p in (up, down):
        p.add_argument("--hub-url", help="the Hub (default: $HF_ENDPOINT or huggingface.co)")
        p.add_argument("--token", help="Hub token (default: $HF_TOKEN)")
        p.add_argument("--repo-type", choices=("model", "dataset", "space"), default=None)


def local_files(paths: list[str]) -> list[tuple[str, str]]:
    """``(path in repo, local path)`` for the PATH arguments, in a stable order."""
    out: list[tuple[str, str]] = []
    for given in paths:
        root = Path(given)
        if root.is_file():
            out.append((root.name, str(root)))
        elif root.is_dir():
            for f in sorted(root.rglob("*")):
                rel = f.relative_to(root)
                if f.is_file() and ".git" not in rel.parts:
                    out.append((rel.as_posix(), str(f)))
        else:
            raise FileNotFoundError(2, "no such file or directory", given)
    return out


async def _upload(args: argparse.Namespace) -> dict[str, Any]:
    from ..hub import HubClient

    files = local_files(args.paths)
    async with HubClient(args.hub_url, args.token) as hub:
        if args.create:
            await hub.create_repo(args.repo, repo_type=args.repo_type, exist_ok=True)
        result = await hub.upload_files(
            args.repo, files, repo_type=args.repo_type, branch=args.branch,
            commit_title=args.commit_message, commit_description=args.description,
            parent_commit=args.parent_commit,
        )  # fmt: skip
    return result.to_dict()


async def _download(args: argparse.Namespace) -> dict[str, Any]:
    from ..hub import HubClient
    from ..session import SessionConfig

    config = SessionConfig(
        chunk_cache="disk" if args.cache_dir else "none", chunk_cache_dir=args.cache_dir
    )
    async with HubClient(args.hub_url, args.token, config=config) as hub:
        info = await hub.file_info(args.repo, args.path, repo_type=args.repo_type,
                                   revision=args.revision)  # fmt: skip
        stats = await hub.save_file(info, args.out)
    return {
        "repo": args.repo,
        "path": args.path,
        "out": os.fspath(args.out),
        "commit": info.commit,
        "size": info.size,
        "xet_hash": info.xet_hash,
        "verified": stats.verified,
        "bytes_fetched": stats.bytes_fetched,
        "bytes_from_cache": stats.bytes_from_cache,
        "seconds": round(stats.elapsed, 3),
    }


def run(args: argparse.Namespace) -> int:
    work = _upload if args.hub_command == "upload" else _download
    output = asyncio.run(work(args))
    json.dump(output, sys.stdout)
    sys.stdout.write("\n")
    return 0


__all__ = ["configure", "local_files", "run"]
