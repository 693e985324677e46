"""``python -m xet_cas_server --data DIR --port PORT --dev-secret SECRET [--web DIR] ...``

When the socket listens, prints two lines to stdout (flushed):
``xet_cas_server ready at http://127.0.0.1:PORT`` and, for the Hub API,
``HF_ENDPOINT=http://127.0.0.1:PORT HF_TOKEN=<dev secret>``. Logs go to stderr as JSON lines.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import uvicorn

from .app import create_app
from .config import (
    DEFAULT_MAX_JSON_BYTES,
    DEFAULT_MAX_SHARD_BYTES,
    DEFAULT_MAX_STAGING_BYTES,
    DEFAULT_MAX_XORB_BYTES,
    DISABLEABLE,
    ServerConfig,
)
from .faults import parse_config
from .jsonlog import setup_logging
from .protocol import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_HEAD_BYTES,
    protocol_class,
)

READY_PREFIX = "xet_cas_server ready at "
HUB_LINE_PREFIX = "HF_ENDPOINT="


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m xet_cas_server", description="Local Xet CAS server."
    )
    p.add_argument("--data", required=True, type=Path, help="data directory (created if missing)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument(
        "--dev-secret",
        default=os.environ.get("XET_CAS_DEV_SECRET"),
        help="opens the token endpoint and the admin API (env XET_CAS_DEV_SECRET)",
    )
    p.add_argument(
        "--public-url",
        default="",
        help="base URL given to clients (casUrl, signed URLs); default http://HOST:PORT",
    )
    p.add_argument("--web", type=Path, help="serve this directory at / (cross-origin isolated)")
    p.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime, seconds")
    p.add_argument(
        "--dedup-key-ttl", type=int, default=7 * 24 * 3600, help="dedup HMAC key expiry, seconds"
    )
    p.add_argument(
        "--orphan-xorb-grace",
        type=float,
        default=7 * 24 * 3600,
        help="seconds an accepted xorb no shard references is kept (resumable uploads); "
        "older ones are removed at start-up",
    )
    p.add_argument(
        "--signed-url-ttl", type=int, default=900, help="signed xorb URL lifetime, seconds"
    )
    p.add_argument("--grant-ttl", type=int, default=900, help="upload grant lifetime, seconds")
    p.add_argument(
        "--disable",
        action="append",
        default=[],
        choices=sorted(DISABLEABLE),
        help="answer 404 on an endpoint group (repeatable) to exercise client fallbacks",
    )
    p.add_argument("--max-xorb-bytes", type=int, default=DEFAULT_MAX_XORB_BYTES)
    p.add_argument("--max-shard-bytes", type=int, default=DEFAULT_MAX_SHARD_BYTES)
    p.add_argument("--max-json-bytes", type=int, default=DEFAULT_MAX_JSON_BYTES)
    p.add_argument(
        "--max-staging-bytes",
        type=int,
        default=DEFAULT_MAX_STAGING_BYTES,
        help="per access token: bytes of open upload grants",
    )
    p.add_argument(
        "--max-header-bytes",
        type=int,
        default=DEFAULT_MAX_HEAD_BYTES,
        help="largest request head (431 beyond)",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEAD_TIMEOUT,
        help="seconds to send a request head",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT,
        help="longest pause inside a request body, seconds",
    )
    p.add_argument(
        "--heartbeat", type=float, default=20.0, help="v2 shard NDJSON heartbeat, seconds"
    )
    p.add_argument("--faults", type=parse_config, default={}, help="fault config: JSON or @file")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


class _ReadyServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, dev_secret: str) -> None:
        super().__init__(config)
        self.dev_secret = dev_secret

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            host, port = sockets[0].getsockname()[:2]
            url = f"http://{host}:{port}"
            # The second line is for people: paste it in front of `hf upload ...` or a script
            # using huggingface_hub (the dev secret is an admin Hub token).
            sys.stdout.write(
                f"{READY_PREFIX}{url}\n{HUB_LINE_PREFIX}{url} HF_TOKEN={self.dev_secret}\n"
            )
            sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.dev_secret:
        print("error: --dev-secret (or XET_CAS_DEV_SECRET) is required", file=sys.stderr)
        return 2
    setup_logging(args.log_level)
    # Bind first so port 0 works and the ready line (and the default public URL) can name the
    # real port.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    config = ServerConfig(
        data_dir=args.data.resolve(),
        dev_secret=args.dev_secret,
        host=args.host,
        port=sock.getsockname()[1],
        public_url=args.public_url,
        web_dir=args.web.resolve() if args.web else None,
        token_ttl=args.token_ttl,
        dedup_key_ttl=args.dedup_key_ttl,
        signed_url_ttl=args.signed_url_ttl,
        grant_ttl=args.grant_ttl,
        orphan_xorb_grace=args.orphan_xorb_grace,
        disabled=frozenset(args.disable),
        max_xorb_bytes=args.max_xorb_bytes,
        max_shard_bytes=args.max_shard_bytes,
        max_json_bytes=args.max_json_bytes,
        max_staging_bytes=args.max_staging_bytes,
        max_head_bytes=args.max_header_bytes,
        head_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        heartbeat_seconds=args.heartbeat,
        faults=args.faults,
        log_level=args.log_level,
    )
    if config.web_dir is not None and not config.web_dir.is_dir():
        print(f"error: --web {config.web_dir} is not a directory", file=sys.stderr)
        return 2
    uv_config = uvicorn.Config(
        create_app(config),
        http=protocol_class(config.max_head_bytes, config.head_timeout, config.body_timeout),
        log_config=None,
        access_log=False,
        timeout_keep_alive=75,
        log_level=config.log_level,
    )
    server = _ReadyServer(uv_config, config.dev_secret)
    # Server.run, not asyncio.run(server.serve()): run picks the event loop (uvloop when it is
    # installed, as pyproject.toml asks); asyncio.run always made the default selector loop.
    server.run(sockets=[sock])
    return 0
