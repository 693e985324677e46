"""Retry policy (exponential backoff with full jitter) and HTTP status classification.

Retryable: no response at all (connection refused/reset/dropped, timeout), 5xx except 501,
408 and 429 (whose ``Retry-After`` is honoured). 501 is never retried: servers use it (and
404) to say "this endpoint does not exist", which triggers protocol fallbacks. Everything else
is final. Clock, sleep and randomness are injectable so tests run instantly and
deterministically.

Each retry can be announced before its wait (``RetryPolicy.on_retry``, a sync or async
callable receiving a :class:`RetryNotice`): sessions turn these into progress events, so a
user watching a stalled upload learns that it is retrying, when, and why.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import (
    XetAuthError,
    XetError,
    XetNotFoundError,
    XetRangeError,
    XetResponseError,
    XetServerError,
)
from .transport import Response

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 505, 506, 507, 508, 509, 510, 511})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or (status >= 500 and status != 501)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """One announced retry: ``attempt`` (1-based) of ``max_attempts`` failed; the next starts
    after ``delay`` seconds. ``what``: the operation ("xorb upload", "shard upload", ...);
    ``reason``: why it failed ("HTTP 503", "server unreachable: ..."), never a URL's query."""

    what: str
    attempt: int
    max_attempts: int
    delay: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "delay": round(self.delay, 3),
            "reason": self.reason,
        }


@dataclass
class RetryPolicy:
    """Bounded exponential backoff.

    Attempt ``k`` (0-based) that failed waits ``uniform(c/2, c)`` with
    ``c = min(max_delay, base_delay * 2**k)`` (jitter spreads clients apart), or the
    server's ``Retry-After`` (capped at ``max_delay``). Gives up after ``max_attempts``
    attempts, or when the next wait would end past ``max_total`` seconds after the first try.
    ``on_retry``: told of each retry before its wait (see the module docstring).
    """

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_total: float = 300.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    on_retry: Callable[[RetryNotice], Any] | None = None

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        cap = min(self.max_delay, self.base_delay * (2**attempt))
        return self.rng.uniform(cap / 2, cap)

    def start(self) -> RetryState:
        return RetryState(self, self.clock())

    def with_attempts(self, max_attempts: int) -> RetryPolicy:
        return replace(self, max_attempts=max_attempts)

    def announcing(self, on_retry: Callable[[RetryNotice], Any] | None) -> RetryPolicy:
        """This policy with ``on_retry`` as its listener (a copy; the same rng and clock)."""
        return replace(self, on_retry=on_retry)


@dataclass
class RetryState:
    """Progress of one retried operation."""

    policy: RetryPolicy
    started: float
    attempts: int = 0

    async def backoff(
        self, retry_after: float | None = None, *, what: str = "request", reason: str = ""
    ) -> bool:
        """Record a failed attempt; announce the retry (``what`` failed because of
        ``reason``: see :class:`RetryNotice`), sleep and return True if another attempt is
        allowed."""
        self.attempts += 1
        if self.attempts >= self.policy.max_attempts:
            return False
        wait = self.policy.delay(self.attempts - 1, retry_after)
        if self.policy.clock() + wait - self.started > self.policy.max_total:
            return False
        listener = self.policy.on_retry
        if listener is not None:
            notice = RetryNotice(what, self.attempts, self.policy.max_attempts, wait, reason)
            result = listener(notice)
            if inspect.isawaitable(result):
                await result
        await self.policy.sleep(wait)
        return True


def error_for_response(resp: Response, what: str, *, attempts: int = 1) -> XetError:
    """The typed error for a final non-success response: its status, request id and the
    server's message as fields (the error redacts the URL's query everywhere)."""
    status = resp.status
    detail = _server_message(resp)
    message = f"{what} failed" + (f": {detail}" if detail else "")
    if attempts > 1:
        message += f" (after {attempts} attempts)"
    kwargs = {
        "status": status,
        "request_id": resp.request_id,
        "url": resp.url or None,
        "server_message": detail or None,
    }
    if status in (401, 403):
        return XetAuthError(message, **kwargs)
    if status == 404:
        return XetNotFoundError(message, **kwargs)
    if status == 416:
        return XetRangeError(message, **kwargs)
    if status >= 500 or status in (408, 429):
        return XetServerError(message, **kwargs)
    if 400 <= status < 500:
        return XetServerError(f"{what} was refused" + (f": {detail}" if detail else ""), **kwargs)
    return XetResponseError(f"{what}: unexpected HTTP status", **kwargs)


def _server_message(resp: Response) -> str:
    """A short, printable excerpt of an error body (JSON ``message``/``error`` when present)."""
    text = resp.body[:2000].decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    if text.startswith("{"):
        import json

        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in ("message", "error", "detail"):
                if isinstance(data.get(key), str):
                    return data[key][:200]
    return " ".join(text.split())[:200]


__all__ = [
    "RETRYABLE_STATUSES",
    "RetryNotice",
    "RetryPolicy",
    "RetryState",
    "error_for_response",
    "is_retryable_status",
    "parse_retry_after",
]
