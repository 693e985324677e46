"""What ``python -m xet_pyodide upload`` and ``download`` share: the endpoint and token options,
the session they open, and printing the one JSON object they answer with.

Tokens: ``--token TOKEN [--token-exp UNIX]`` (expiry defaults to one hour from now), or
``--token-url URL [--token-header 'Name: value' ...]``, fetched (GET, with the given headers)
for a ``{"accessToken", "exp", "casUrl"}`` token and fetched again whenever the token is about
to expire; ``--endpoint`` then defaults to ``casUrl``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import SessionConfig
    from .session import XetSession


def parse_header(text: str) -> tuple[str, str]:
    """``argparse`` type of ``--token-header``: ``'Name: value'``. A malformed one is not
    echoed in the error: it usually holds a token."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(
            "expected 'Name: value', e.g. 'Authorization: Bearer hf_...' (what was given is "
            "not repeated here, as it may hold a token)"
        )
    return name.strip(), value.strip()


def add_auth_arguments(parser: argparse.ArgumentParser, *, token_help: str) -> None:
    """``--endpoint``, ``--token`` | ``--token-url`` (one required), ``--token-exp`` and
    ``--token-header``."""
    parser.add_argument("--endpoint", help="CAS server URL (default: casUrl of --token-url)")
    auth = parser.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token", help=token_help)
    auth.add_argument("--token-url", help="token endpoint answering accessToken/exp/casUrl")
    parser.add_argument(
        "--token-exp", type=int, help="expiry of --token (unix seconds; default: in 1 hour)"
    )
    parser.add_argument(
        "--token-header",
        type=parse_header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="header sent to --token-url (repeatable)",
    )


@contextlib.asynccontextmanager
async def open_session(
    args: argparse.Namespace, config: SessionConfig | None = None, **options: Any
) -> AsyncIterator[XetSession]:
    """A :class:`~xet_pyodide.session.XetSession` for the parsed auth options, closed (with
    its token refresher) on exit. ``options`` go to the session (e.g. ``resume=``)."""
    from ..errors import XetAuthError
    from ..io.token_url import TokenUrlRefresher
    from .session import XetSession

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
    session = XetSession(endpoint, token_info, refresher, config=config, **options)
    try:
        yield session
    finally:
        await session.aclose()
        if refresher is not None:
            await refresher.aclose()


def run_json(
    args: argparse.Namespace,
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]],
) -> int:
    """Check the auth options, run ``main(args)`` and print its result as one JSON line."""
    if args.token_exp is not None and args.token_url:
        raise SystemExit("--token-exp only applies to --token")
    output = asyncio.run(main(args))
    json.dump(output, sys.stdout)
    sys.stdout.write("\n")
    return 0


__all__ = ["add_auth_arguments", "open_session", "parse_header", "run_json"]
