"""Fault injection (off by default): errors, 429s, latency, dropped connections, corrupted bytes.

Configuration (CLI ``--faults JSON|@file`` at start, ``POST /_admin/faults`` at run time; a POST
replaces the whole configuration)::

    {
      "seed": 1,                      # RNG seed, for reproducible runs (one stream per
                                      # endpoint and fault kind, derived from it)
      "token_ttl": 40,                # override the token endpoint's lifetime (short tokens)
      "endpoints": {                  # rule per endpoint name (see ENDPOINTS), "*" = any other
        "xorb_fetch": {"corrupt_rate": 1.0, "max_faults": 1},
        "shard_v2":   {"error_rate": 1.0, "status": 503, "max_faults": 2},
        "*":          {"latency_ms": 50}
      }
    }

Rule fields: ``error_rate`` + ``status`` (answer immediately with that status; 429 gets a
``Retry-After``), ``latency_ms``, ``abort_rate`` (read half the request body, then kill the
connection: nothing is processed), ``drop_rate`` (process the request, then kill the connection
half-way through the response: the client never sees the acknowledgement), ``corrupt_rate``
(signed-URL xorb GETs: flip one payload byte), ``expire_rate`` (reconstructions: hand out signed
URLs that have already expired), ``commit_delay_ms`` (xorb/shard uploads: pause between the
durable object write and the index commit, to widen the window a ``kill -9`` can hit),
``max_faults`` (stop injecting after that many faults of this rule; makes "fail twice, then
succeed" tests deterministic).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

#: Endpoint names used by faults, stats and the request log.
ENDPOINTS = (
    "token", "xorb_upload", "xorb_head", "xorb_grant", "grant_put", "xorb_commit",
    "shard_v1", "shard_v2", "chunks", "reconstruction_v1", "reconstruction_v2",
    "reconstruction_batch", "file_head", "xorb_fetch", "telemetry", "admin", "static", "other",
    # the Hub API (hub/)
    "hub_repo", "hub_tree", "hub_preupload", "hub_commit", "hub_lfs_batch", "hub_lfs_put",
    "hub_resolve",
)  # fmt: skip

#: The admin API must keep working whatever the faults (tests switch them off through it).
NEVER_FAULTED = frozenset({"admin"})


class ConnectionDropped(Exception):
    """Raised inside the ASGI app on purpose: the server then aborts the connection."""


@dataclass
class FaultRule:
    error_rate: float = 0.0
    status: int = 503
    retry_after: int = 1
    latency_ms: int = 0
    abort_rate: float = 0.0
    drop_rate: float = 0.0
    corrupt_rate: float = 0.0
    expire_rate: float = 0.0
    commit_delay_ms: int = 0
    max_faults: int | None = None
    injected: int = 0

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultRule:
        known = {f.name for f in fields(cls)} - {"injected"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown fault rule field(s): {sorted(unknown)}")
        rule = cls(**raw)
        for name in ("error_rate", "abort_rate", "drop_rate", "corrupt_rate", "expire_rate"):
            if not 0.0 <= float(getattr(rule, name)) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if not 400 <= rule.status <= 599:
            raise ValueError("status must be a 4xx or 5xx code")
        return rule


class FaultInjector:
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or {})

    def configure(self, config: dict[str, Any]) -> None:
        """Validate and install a configuration (replacing the previous one)."""
        unknown = set(config) - {"seed", "token_ttl", "endpoints"}
        if unknown:
            raise ValueError(f"unknown fault config key(s): {sorted(unknown)}")
        rules: dict[str, FaultRule] = {}
        for name, raw in (config.get("endpoints") or {}).items():
            if name != "*" and (name not in ENDPOINTS or name in NEVER_FAULTED):
                raise ValueError(f"unknown endpoint {name!r}; known: {', '.join(ENDPOINTS)}")
            rules[name] = FaultRule.from_json(dict(raw))
        token_ttl = config.get("token_ttl")
        if token_ttl is not None and int(token_ttl) < 1:
            raise ValueError("token_ttl must be >= 1")
        with self._lock:
            self._rules = rules
            self._seed = config.get("seed")
            self._rngs: dict[tuple[str, str], random.Random] = {}
            self.token_ttl: int | None = int(token_ttl) if token_ttl is not None else None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "seed": self._seed,
                "token_ttl": self.token_ttl,
                "endpoints": {k: asdict(v) for k, v in self._rules.items()},
            }

    def _rule(self, endpoint: str) -> FaultRule | None:
        if endpoint in NEVER_FAULTED:
            return None
        return self._rules.get(endpoint) or self._rules.get("*")

    def decide(self, endpoint: str, kind: str) -> bool:
        """Roll the dice for one fault kind; a hit counts against ``max_faults``."""
        with self._lock:
            rule = self._rule(endpoint)
            if rule is None:
                return False
            rate = float(getattr(rule, f"{kind}_rate"))
            if rate <= 0 or (rule.max_faults is not None and rule.injected >= rule.max_faults):
                return False
            if rate < 1 and self._stream(endpoint, kind).random() >= rate:
                return False
            rule.injected += 1
            return True

    def _stream(self, endpoint: str, kind: str) -> random.Random:
        """The dice of one endpoint and fault kind. With a seed, each stream is seeded from
        it and its own name, so the n-th roll of an endpoint does not depend on how requests
        to other endpoints interleave with it (concurrent clients stay reproducible)."""
        key = (endpoint, kind)
        rng = self._rngs.get(key)
        if rng is None:
            seed = self._seed
            rng = self._rngs[key] = random.Random(
                None if seed is None else f"{seed}/{endpoint}/{kind}"
            )
        return rng

    def latency(self, endpoint: str) -> float:
        with self._lock:
            rule = self._rule(endpoint)
            return rule.latency_ms / 1000 if rule else 0.0

    def commit_hook(self, endpoint: str) -> Callable[[], None] | None:
        """A pause between "object file durable" and "index row committed" (crash tests)."""
        with self._lock:
            rule = self._rule(endpoint)
            delay = rule.commit_delay_ms / 1000 if rule else 0.0
        return (lambda: time.sleep(delay)) if delay > 0 else None

    def error_response(self, endpoint: str) -> Response | None:
        if not self.decide(endpoint, "error"):
            return None
        with self._lock:
            rule = self._rule(endpoint)
            assert rule is not None
            status, retry_after = rule.status, rule.retry_after
        headers = {"Retry-After": str(retry_after)} if status in (429, 503) else {}
        body = {"error": "injected_fault", "message": f"fault injection: {status} on {endpoint}"}
        return JSONResponse(body, status_code=status, headers=headers)


async def sleep_latency(faults: FaultInjector, endpoint: str) -> None:
    delay = faults.latency(endpoint)
    if delay > 0:
        await asyncio.sleep(delay)


class DroppedResponse(Response):
    """Wraps a response: headers and half of the body go out, then the connection is killed."""

    def __init__(self, inner: Response) -> None:
        super().__init__(status_code=inner.status_code)
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def truncating_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                await send(
                    {
                        "type": "http.response.body",
                        "body": body[: len(body) // 2],
                        "more_body": True,
                    }
                )
                raise ConnectionDropped("fault injection: response dropped mid-body")
            await send(message)

        await self.inner(scope, receive, truncating_send)


class AbortedRequest(Response):
    """Reads about half of the request body, then kills the connection before any answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        expected = int(headers.get(b"content-length", b"0") or 0)
        seen = 0
        while seen < expected // 2:
            message = await receive()
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
        )
        raise ConnectionDropped("fault injection: request aborted mid-body")


def parse_config(text: str) -> dict[str, Any]:
    """CLI helper: a JSON object, or ``@path`` to a JSON file."""
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as f:
            text = f.read()
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("fault configuration must be a JSON object")
    return value
