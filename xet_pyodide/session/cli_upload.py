"""``python -m xet_pyodide upload``: upload local files (one finalize), print one JSON object.

    python -m xet_pyodide upload --endpoint URL --token TOKEN FILE...
    python -m xet_pyodide upload [--endpoint URL] --token-url URL \\
        [--token-header 'Authorization: Bearer hf_...'] FILE...

Upload resume: every xorb the server acknowledges is recorded in ``--resume-dir`` (default
``~/.cache/xet_pyodide/resume``, or ``$XET_PYODIDE_RESUME_DIR``), keyed by endpoint and
``--token-url``; a rerun after a crash or kill does not send those chunks again.
``--no-resume`` turns it off. If the server refuses the shard because a recorded xorb is gone,
the upload runs once more without it.

With ``--token-url`` the URL is fetched (GET, with the given headers) for a
``{"accessToken", "exp", "casUrl"}`` token, and fetched again whenever the token is about to
expire; ``--endpoint`` then defaults to ``casUrl`` (see :mod:`.cli_common`). Output::

    {"files": [{"path", "hash", "size", "sha256"}, ...],
     "metrics": {"total_bytes", "new_bytes", "deduped_bytes", "deduped_bytes_global",
                 "bytes_resumed", "xorb_bytes_uploaded", "shard_bytes_uploaded"}}
"""

from __future__ import annotations

import argparse
from typing import Any

from .cli_common import add_auth_arguments, open_session, run_json

METRIC_FIELDS = (
    "total_bytes",
    "new_bytes",
    "deduped_bytes",
    "deduped_bytes_global",
    "bytes_resumed",
    "xorb_bytes_uploaded",
    "shard_bytes_uploaded",
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="files to upload")
    add_auth_arguments(parser, token_help="CAS access token")
    parser.add_argument(
        "--skip-sha256", action="store_true", help="do not compute or store SHA-256"
    )
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume-dir",
        metavar="DIR",
        help="where acknowledged xorbs are recorded for resuming an interrupted upload "
        "(default: $XET_PYODIDE_RESUME_DIR, else ~/.cache/xet_pyodide/resume)",
    )
    resume.add_argument(
        "--no-resume", action="store_true", help="neither record nor resume uploads"
    )


async def _upload(args: argparse.Namespace) -> dict[str, Any]:
    from ..errors import XetResumeStaleError
    from .sha256 import COMPUTE, SKIP

    sha256 = SKIP if args.skip_sha256 else COMPUTE
    resume: Any = False if args.no_resume else args.resume_dir
    scope = args.token_url or ""
    for attempt in range(2):
        try:
            async with open_session(args, resume=resume, resume_scope=scope) as session:
                for path in args.files:
                    await session.upload_file(path, name=path, sha256=sha256)
                result = await session.finalize()
            break
        except XetResumeStaleError:
            if attempt:  # the state was cleaned the first time: this cannot repeat
                raise
    metrics = result.metrics.to_dict()
    return {
        "files": [
            {"path": f.name, "hash": f.hash, "size": f.size, "sha256": f.sha256}
            for f in result.files
        ],
        "metrics": {name: metrics[name] for name in METRIC_FIELDS},
    }


def run(args: argparse.Namespace) -> int:
    return run_json(args, _upload)


__all__ = ["METRIC_FIELDS", "configure", "run"]
