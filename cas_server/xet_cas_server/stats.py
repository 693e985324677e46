"""Counters and a bounded request log, readable through the admin API.

The counters are what end-to-end tests assert on ("a re-upload sent 0 xorb bytes", "a cached
download fetched no xorb bytes"), so their meaning is fixed here:

* ``xorb_bytes_received`` — xorb body bytes accepted off the wire (legacy POST and grant PUT),
  counted as they are read, whether or not the xorb turns out to be new;
* ``xorb_bytes_served`` — chunk-record bytes sent from signed xorb URLs (payload of 206 parts);
* ``shard_bytes_received`` — shard upload body bytes (v1 and v2);
* ``dedup_queries`` / ``dedup_hits`` — global dedup lookups and the ones that found a xorb;
* ``sha256_proofs_streamed`` / ``sha256_proofs_partly_streamed`` / ``sha256_proofs_rebuilt``
  — the Hub's commit proofs of a file's sha256: taken from the hashing done during its upload
  (``hub/early.py``), continued at commit from a stream that held only its first xorbs (a
  reordered or deduplicated xorb after them), or made by rebuilding the whole file at commit
  (counted when the proof is made); ``sha256_proofs_ahead`` — commits that found their proof
  started when the shard registered the file (done, or waited for);
* ``requests[endpoint]`` / ``statuses[endpoint][status]`` — per-endpoint request counts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

COUNTERS = (
    "xorb_bytes_received",
    "xorb_bytes_served",
    "shard_bytes_received",
    "dedup_queries",
    "dedup_hits",
    "xorbs_inserted",
    "xorbs_existing",
    "shards_inserted",
    "shards_existing",
    "files_registered",
    "rejected_objects",
    "faults_injected",
    "sha256_proofs_streamed",
    "sha256_proofs_partly_streamed",
    "sha256_proofs_rebuilt",
    "sha256_proofs_ahead",
)


class Stats:
    def __init__(self, log_size: int = 2000) -> None:
        self._lock = threading.Lock()
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._counters: Counter[str] = Counter({k: 0 for k in COUNTERS})
            self._requests: Counter[str] = Counter()
            self._statuses: Counter[tuple[str, int]] = Counter()
            self._since = time.time()
            self._log.clear()

    def add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self._counters[counter] += n

    def record_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            endpoint = entry["endpoint"]
            self._requests[endpoint] += 1
            self._statuses[(endpoint, entry["status"])] += 1
            self._log.append(entry)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            statuses: dict[str, dict[str, int]] = {}
            for (endpoint, status), n in sorted(self._statuses.items()):
                statuses.setdefault(endpoint, {})[str(status)] = n
            return {
                **dict(self._counters),
                "requests": dict(sorted(self._requests.items())),
                "statuses": statuses,
                "since": self._since,
            }

    def request_log(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._log)
        return entries[-limit:] if limit else entries
