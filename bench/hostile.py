"""A bounded hostile campaign against a fresh local CAS server, with its cost to the server.

    python bench/hostile.py [--only NAME ...] [--repeat N] [--fresh] [--json]

Starts ``python -m xet_cas_server`` (default options, temporary data dir, 127.0.0.1 only),
stores a little legitimate data (a 3 MB file, a xorb of 8192 tiny chunks), then runs every
attack of issue 18 a fixed number of times (``--repeat``, default 2) and prints, per attack,
the status codes seen and the server's resident set afterwards; then the server's peak RSS
(``VmHWM``), its CPU seconds, the number of tracebacks it logged, whether anything was stored
that should not have been, and the verdict against the bar: **peak RSS under 512 MiB, no 5xx,
nothing stored that was refused.** Exit status 0 when the bar is met. ``--fresh`` gives every
attack its own server, for per-attack peak RSS and CPU seconds.

Attacks (names for ``--only``): ``multirange`` (a signed span repeated 100x, and 10,000
one-byte ranges), ``xorb-bomb`` (empty LZ4 records claiming 128 KiB each, legacy POST and grant
flow), ``shard-amplify`` (400 terms spanning a whole 8192-chunk xorb, v1 and v2), ``credentials``
(non-ASCII bytes in a bearer token, the dev secret, a URL signature), ``nested-json``,
``range-eof``, ``cross-repo`` (a token of another repository reads a file / commits a grant),
``host-header`` (a forged ``Host`` must not reach ``casUrl`` or signed URLs), ``big-header``
(up to 200 MiB of request header), ``half-open`` (100 connections that never finish their
request head), ``staging`` (grants reserved by one token until refused), ``latency``
(reconstruction + small range fetch on one kept-alive connection: median ms).
The whole campaign takes well under a minute plus the server's header timeout (``half-open``
waits for it). "Nothing stored" compares the index rows and object files before and after the
attacks; ``staging/`` is left out of it: a grant's PUT body is accepted (its CRC matches) and
waits there for a commit until the grant expires, bounded per token (``staging``).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "cas_server")]

import httpx  # noqa: E402

from tests.plugins.cas_server import (  # noqa: E402
    CasServer,
    build_upload,
    rand_bytes,
    stored_state,
)
from tests.plugins.hostile import (  # noqa: E402
    amplified_shard,
    cpu_seconds,
    decode_bomb,
    nested_json,
    peak_rss_mib,
    repeated_range,
    rss_mib,
    wide_xorb,
)
from xet_pyodide.core.crc import crc64_nvme  # noqa: E402

MIB = 1024 * 1024
RSS_BAR_MIB = 512
HALF_OPEN = 100


class Campaign:
    def __init__(self, server: CasServer, repeat: int) -> None:
        self.server = server
        self.repeat = repeat
        self.write, _ = server.token("write")
        self.read, _ = server.token("read")
        self.client = httpx.Client(base_url=server.url, timeout=120)
        self.results: dict[str, dict[str, Any]] = {}
        self.file_hash = ""
        self.file_size = 0

    # ---------------------------------------------------------------- plumbing
    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.write}"}

    def note(self, name: str, status: int | str, **extra: Any) -> None:
        entry = self.results.setdefault(name, {"statuses": Counter()})
        entry["statuses"][str(status)] += 1
        for k, v in extra.items():
            entry.setdefault(k, []).append(v)

    def send(self, name: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        """One request; a transport error is noted as the attack's outcome (and fails the bar:
        the server must answer, not drop the connection)."""
        try:
            return self.client.request(method, url, **kw)
        except httpx.HTTPError as e:
            self.note(name, f"dropped:{type(e).__name__}")
            return None

    def setup(self) -> None:
        """Legitimate data the attacks aim at: a 3 MB random file and a wide xorb."""
        up = build_upload([rand_bytes(3_000_000, 18)])
        for x in up.xorbs:
            r = self.client.post(f"/v1/xorbs/default/{x.hash}", content=x.body, headers=self.auth())
            r.raise_for_status()
        self.client.post("/v1/shards", content=up.shard, headers=self.auth()).raise_for_status()
        self.file_hash, self.file_size = up.file_hashes[0], 3_000_000
        self.wide = wide_xorb()
        r = self.client.post(
            f"/v1/xorbs/default/{self.wide.hash}", content=self.wide.body, headers=self.auth()
        )
        r.raise_for_status()

    def fetch_entry(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        r = self.client.get(
            f"/v1/reconstructions/{self.file_hash}",
            headers={**self.auth(self.read), **(headers or {})},
        )
        r.raise_for_status()
        return next(iter(r.json()["fetch_info"].values()))[0]

    # ---------------------------------------------------------------- attacks
    def multirange(self) -> None:
        entry = self.fetch_entry()
        first, last = entry["url_range"]["start"], entry["url_range"]["end"]
        tiny = "bytes=" + ",".join(f"{i}-{i}" for i in range(first, first + 10_000))
        for _ in range(self.repeat):
            for value in (repeated_range(first, last, 100), tiny):
                r = self.send("multirange", "GET", entry["url"], headers={"Range": value})
                if r is not None:
                    self.note("multirange", r.status_code, body_mib=round(len(r.content) / MIB, 1))

    def xorb_bomb(self) -> None:
        claimed = "0" * 63 + "1"
        for body in (decode_bomb(12_288), decode_bomb(838_860)):
            for _ in range(self.repeat):
                url = f"/v1/xorbs/default/{claimed}"
                r = self.send("xorb-bomb", "POST", url, content=body, headers=self.auth())
                if r is not None:
                    self.note("xorb-bomb", r.status_code)
            # the grant flow: PUT (CRC matches) then commit, where the body is decoded
            crc = crc64_nvme(body)
            grant = {"length": len(body), "checksum": {"algo": "crc64nvme", "value": str(crc)}}
            url = f"/v1/xorb-grants/default/{claimed}"
            r = self.send("xorb-bomb", "POST", url, json=grant, headers=self.auth())
            if r is None or r.status_code != 201:
                self.note("xorb-bomb", f"grant:{r.status_code if r else '-'}")
                continue
            g = r.json()
            r = self.send("xorb-bomb", "PUT", g["url"], content=body, headers=g["headers"])
            if r is not None:
                self.note("xorb-bomb", f"put:{r.status_code}")
            url = f"/v1/xorb-commits/default/{claimed}/grant/{g['id']}"
            r = self.send("xorb-bomb", "POST", url, headers=self.auth())
            if r is not None:
                self.note("xorb-bomb", f"commit:{r.status_code}")

    def shard_amplify(self) -> None:
        shard = amplified_shard(self.wide, 400)
        for _ in range(self.repeat):
            for route in ("/v1/shards", "/v2/shards"):
                t0 = time.monotonic()
                r = self.send("shard-amplify", "POST", route, content=shard, headers=self.auth())
                if r is None:
                    continue
                status: int | str = r.status_code
                if route == "/v2/shards" and r.status_code == 200:
                    last = json.loads(r.text.strip().splitlines()[-1])
                    status = f"200/{last['type']}"
                self.note("shard-amplify", status, seconds=round(time.monotonic() - t0, 2))

    def credentials(self) -> None:
        origin = {"Origin": "http://example.test"}
        entry = self.fetch_entry()
        url = entry["url"].replace("Signature=", "Signature=%C3%A9", 1)
        span = f"bytes={entry['url_range']['start']}-{entry['url_range']['end']}"
        cases: list[tuple[str, dict[str, Any]]] = [
            (f"/v1/reconstructions/{self.file_hash}", {"Authorization": b"Bearer xcas1.\xe9.\xe9"}),
            ("/_admin/stats", {"Authorization": b"Bearer \xff\xfe secret"}),
            (self.server.token_url("read"), {"Authorization": b"Bearer \xc3\xa9"}),
            (url, {"Range": span}),
        ]
        for _ in range(self.repeat):
            for target, headers in cases:
                r = self.send("credentials", "GET", target, headers={**origin, **headers})
                if r is not None:
                    cors = "cors" if "access-control-allow-origin" in r.headers else "no-cors"
                    self.note("credentials", f"{r.status_code}/{cors}")

    def nested_json_(self) -> None:
        body = nested_json(100_000)
        json_type = {"Content-Type": "application/json"}
        for _ in range(self.repeat):
            for url, auth in (
                (f"/v1/xorb-grants/default/{'0' * 64}", self.auth()),
                ("/_admin/faults", self.server.token_headers),
            ):
                headers = {**auth, **json_type}
                r = self.send("nested-json", "POST", url, content=body, headers=headers)
                if r is not None:
                    self.note("nested-json", r.status_code)

    def range_eof(self) -> None:
        for _ in range(self.repeat):
            for value in (f"bytes={self.file_size}-", f"bytes={self.file_size + 10}-"):
                url = f"/v1/reconstructions/{self.file_hash}"
                headers = {**self.auth(self.read), "Range": value}
                r = self.send("range-eof", "GET", url, headers=headers)
                if r is not None:
                    self.note("range-eof", r.status_code)

    def cross_repo(self) -> None:
        other = self.client.get(
            f"{self.server.url}/api/models/someone/else/xet-write-token/main",
            headers=self.server.token_headers,
        ).json()["accessToken"]
        body = b"x" * 1000
        crc = str(crc64_nvme(body))
        grant = {"length": len(body), "checksum": {"algo": "crc64nvme", "value": crc}}
        xorb = "1" * 64
        for _ in range(self.repeat):
            url = f"/v1/reconstructions/{self.file_hash}"
            r = self.send("cross-repo", "GET", url, headers=self.auth(other))
            if r is not None:
                self.note("cross-repo", f"read:{r.status_code}")
            url = f"/v1/xorb-grants/default/{xorb}"
            r = self.send("cross-repo", "POST", url, json=grant, headers=self.auth())
            if r is None or r.status_code != 201:
                continue
            g = r.json()
            self.send("cross-repo", "PUT", g["url"], content=body, headers=g["headers"])
            url = f"/v1/xorb-commits/default/{xorb}/grant/{g['id']}"
            r = self.send("cross-repo", "POST", url, headers=self.auth(other))
            if r is not None:
                self.note("cross-repo", f"commit:{r.status_code}")

    def host_header(self) -> None:
        evil = {"Host": "evil.example:666"}
        for _ in range(self.repeat):
            headers = {**self.server.token_headers, **evil}
            r = self.send("host-header", "GET", self.server.token_url("read"), headers=headers)
            if r is not None:
                ok = r.status_code == 200 and r.json()["casUrl"] == self.server.url
                self.note("host-header", f"token:{r.status_code}:{'ours' if ok else 'reflected'}")
            url = self.fetch_entry(evil)["url"]
            ok = url.startswith(self.server.url + "/")
            self.note("host-header", f"signed-url:{'ours' if ok else 'reflected'}")

    def _raw(self) -> socket.socket:
        host, port = urlsplit(self.server.url).hostname, urlsplit(self.server.url).port
        return socket.create_connection((host, port), timeout=10)

    def big_header(self) -> None:
        piece = b"a" * MIB
        for _ in range(self.repeat):
            sent = 0
            deadline = time.monotonic() + 20  # bounded: the unfixed server takes minutes
            with self._raw() as s:
                try:
                    s.sendall(b"GET /_admin/health HTTP/1.1\r\nHost: x\r\nX-Big: ")
                    while sent < 200 * MIB and time.monotonic() < deadline:
                        s.sendall(piece)
                        sent += len(piece)
                    s.sendall(b"\r\n\r\n")
                except OSError:
                    pass  # the server stopped reading: its answer may still be there
                try:
                    status = s.recv(64).split(b" ")[1].decode()
                except (OSError, IndexError):
                    status = "closed"
            self.note("big-header", status, accepted_mib=sent // MIB)

    def half_open(self) -> None:
        socks = []
        for _ in range(HALF_OPEN):
            s = self._raw()
            s.sendall(b"GET /_admin/health HTTP/1.1\r\nHost: x\r\n")  # never finished
            socks.append(s)
        deadline = time.monotonic() + 45
        closed = 0
        for s in socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                data = s.recv(4096)
                closed += 1  # b"" (closed) or an error answer
                del data
            except OSError:
                pass
            s.close()
        self.note("half-open", f"closed:{closed}/{HALF_OPEN}")

    def staging(self) -> None:
        body = rand_bytes(MIB, 7)
        crc = str(crc64_nvme(body))
        statuses: Counter[int] = Counter()
        # one token asks for grants of 64 MiB for distinct (made-up) xorbs until refused
        for i in range(40):
            grant = {"length": 64 * MIB, "checksum": {"algo": "crc64nvme", "value": crc}}
            r = self.client.post(
                f"/v1/xorb-grants/default/{i:064x}", json=grant, headers=self.auth()
            )
            statuses[r.status_code] += 1
            if r.status_code != 201:
                break
        for status, n in statuses.items():
            for _ in range(n):
                self.note("staging", status)
        staged = len(list((self.server.data_dir / "staging").iterdir()))
        self.note("staging", f"staged-files:{staged}")

    def latency(self) -> None:
        entry = self.fetch_entry()
        start = entry["url_range"]["start"]
        small = {"Range": f"bytes={start}-{start + 99}"}
        with httpx.Client(base_url=self.server.url, timeout=30) as c:
            c.get("/_admin/health")
            recon, fetch = [], []
            for _ in range(20 * self.repeat):
                t0 = time.perf_counter()
                r = c.get(f"/v1/reconstructions/{self.file_hash}", headers=self.auth(self.read))
                t1 = time.perf_counter()
                f = c.get(entry["url"], headers=small)
                t2 = time.perf_counter()
                self.note("latency", f"{r.status_code}/{f.status_code}")
                recon.append((t1 - t0) * 1000)
                fetch.append((t2 - t1) * 1000)
        self.results["latency"]["recon_ms_median"] = round(statistics.median(recon), 1)
        self.results["latency"]["fetch_ms_median"] = round(statistics.median(fetch), 1)


ATTACKS: dict[str, Callable[[Campaign], None]] = {
    "multirange": Campaign.multirange,
    "xorb-bomb": Campaign.xorb_bomb,
    "shard-amplify": Campaign.shard_amplify,
    "credentials": Campaign.credentials,
    "nested-json": Campaign.nested_json_,
    "range-eof": Campaign.range_eof,
    "cross-repo": Campaign.cross_repo,
    "host-header": Campaign.host_header,
    "big-header": Campaign.big_header,
    "half-open": Campaign.half_open,
    "staging": Campaign.staging,
    "latency": Campaign.latency,
}


def _is_5xx(status: str) -> bool:
    """``"500"``, ``"commit:503"``, ``"500/no-cors"``: any 5xx part."""
    return any(p.isdigit() and p.startswith("5") for p in status.replace(":", "/").split("/"))


def tracebacks(log: Path) -> int:
    n = 0
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            n += "exc" in json.loads(line)
        except ValueError:
            n += "Traceback" in line
    return n


def run(names: list[str], repeat: int) -> dict[str, Any]:
    """One fresh server, its setup, then ``names`` in order; the report of that server."""
    with tempfile.TemporaryDirectory(prefix="xet-hostile-") as tmp:
        server = CasServer(Path(tmp) / "data").start()
        try:
            pid = server.pid
            assert pid is not None
            campaign = Campaign(server, repeat)
            campaign.setup()
            before = stored_state(server)
            baseline, cpu0 = rss_mib(pid), cpu_seconds(pid)
            started = time.monotonic()
            for name in names:
                t0 = time.monotonic()
                ATTACKS[name](campaign)
                entry = campaign.results.setdefault(name, {"statuses": Counter()})
                entry["rss_mib_after"] = round(rss_mib(pid), 1)
                entry["seconds"] = round(time.monotonic() - t0, 1)
            after = stored_state(server)
            report: dict[str, Any] = {
                "attacks": {
                    k: {**v, "statuses": dict(v["statuses"])} for k, v in campaign.results.items()
                },
                "baseline_rss_mib": round(baseline, 1),
                "peak_rss_mib": round(peak_rss_mib(pid), 1),
                "cpu_seconds": round(cpu_seconds(pid) - cpu0, 2),
                "wall_seconds": round(time.monotonic() - started, 1),
                "tracebacks_logged": tracebacks(server.log_path),
            }
            campaign.client.close()
        finally:
            server.close()
    added = sorted(
        f for f in set(after["files"]) - set(before["files"]) if not f.startswith("staging/")
    )
    statuses = [s for a in report["attacks"].values() for s in a["statuses"]]
    failed = [s for s in statuses if s.startswith("dropped") or _is_5xx(s)]
    report["stored_rows_before"] = before["rows"]
    report["stored_rows_after"] = after["rows"]
    report["stored_files_added"] = added
    report["bar"] = {
        "peak_rss_under_512_mib": report["peak_rss_mib"] < RSS_BAR_MIB,
        "no_5xx": not failed,
        "nothing_stored": before["rows"] == after["rows"] and not added,
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    for name, a in report["attacks"].items():
        extra = {k: v for k, v in a.items() if k not in ("statuses", "rss_mib_after", "seconds")}
        print(
            f"{name:14} {a['seconds']:6.1f}s  rss {a['rss_mib_after']:7.1f} MiB  "
            f"{a['statuses']}  {extra or ''}"
        )
    print(
        f"server: baseline {report['baseline_rss_mib']} MiB, peak {report['peak_rss_mib']} MiB, "
        f"{report['cpu_seconds']} CPU-s (after setup), {report['tracebacks_logged']} tracebacks "
        f"logged; rows {report['stored_rows_before']} -> {report['stored_rows_after']}, "
        f"object files added: {report['stored_files_added'] or 'none'}"
    )
    met = all(report["bar"].values())
    print(f"bar: {report['bar']} -> {'MET' if met else 'NOT MET'}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=sorted(ATTACKS), help="run only these attacks")
    p.add_argument("--repeat", type=int, default=2, help="requests per attack variant")
    p.add_argument(
        "--fresh", action="store_true", help="a fresh server per attack (per-attack peak and CPU)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead")
    args = p.parse_args()
    names = args.only or list(ATTACKS)
    groups = [[n] for n in names] if args.fresh else [names]
    reports = []
    for group in groups:
        report = run(group, args.repeat)
        reports.append(report)
        if not args.json:
            print_report(report)
    if args.json:
        print(json.dumps(reports if args.fresh else reports[0], indent=1))
    return 0 if all(all(r["bar"].values()) for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
