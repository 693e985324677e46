"""``python -m xet_pyodide upload``: upload local files in one commit, print one JSON object.

    python -m xet_pyodide upload --endpoint URL --token TOKEN FILE...
    python -m xet_pyodide upload [--endpoint URL] --token-url URL \\
        [--token-header 'Authorization: Bearer hf_...'] FILE...

With ``--token-url`` the URL is fetched (GET, with the given headers) for a
``{"accessToken", "exp", "casUrl"}`` token, and fetched again whenever the token is about to
expire; ``--endpoint`` then defaults to ``casUrl``. Output::

    {"files": [{"path", "hash", "size", "sha256"}, ...],
     "metrics": {"total_bytes", "new_bytes", "deduped_bytes", "deduped_bytes_global",
                 "xorb_bytes_uploaded", "shard_bytes_uploaded"}}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

METRIC_FIELDS = (
    "total_bytes",
    "new_bytes",
    "deduped_bytes",
    "deduped_bytes_global",
    "xorb_bytes_uploaded",
    "shard_bytes_uploaded",
)


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to upload")
    parser.add_argument("--endpoint", help="CAS server URL (default: casUrl of --token-url)")
    auth = parser.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token", help="CAS access token")
    auth.add_argument("--token-url", help="token endpoint answering accessToken/exp/casUrl")
    parser.add_argument(
        "--token-exp", type=int, help="expiry of --token (unix seconds; default: in 1 hour)"
    )
    parser.add_argument(
        "--token-header",
        type=_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="header sent to --token-url (repeatable)",
    )
    parser.add_argument(
        "--skip-sha256", action="store_true", help="do not compute or store SHA-256"
    )


async def _upload(args: argparse.Namespace) -> dict[str, Any]:
    from ..errors import XetAuthError
    from ..io.token_url import TokenUrlRefresher
    from .session import XetSession
    from .sha256 import COMPUTE, SKIP

    refresher = None
    if args.token_url:
        refresher = TokenUrlRefresher(args.token_url, dict(args.token_header))
        token_info: Any = await refresher()
        endpoint = args.endpoint or token_info.cas_url
    else:
        token_info = (args.token, args.token_exp or int(time.time()) + 3600)
        endpoint = args.endpoint
    if not endpoint:
        raise XetAuthError("no --endpoint given and the token endpoint named no casUrl")
    sha256 = SKIP if args.skip_sha256 else COMPUTE
    session = XetSession(endpoint, token_info, refresher)
    try:
        for path in args.files:
            await session.upload_file(path, name=path, sha256=sha256)
        result = await session.commit()
    finally:
        await session.aclose()
        if refresher is not None:
            await refresher.aclose()
    metrics = result.metrics.to_dict()
    return {
        "files": [
            {"path": f.name, "hash": f.hash, "size": f.size, "sha256": f.sha256}
            for f in result.files
        ],
        "metrics": {name: metrics[name] for name in METRIC_FIELDS},
    }


def run(args: argparse.Namespace) -> int:
    if args.token_exp is not None and args.token_url:
        raise SystemExit("--token-exp only applies to --token")
    output = asyncio.run(_upload(args))
    json.dump(output, sys.stdout)
    sys.stdout.write("\n")
    return 0


__all__ = ["METRIC_FIELDS", "configure", "run"]
