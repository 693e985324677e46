"""bench/floor.py: the floor arithmetic of issue 20's targets (a pure function over measured
figures), the medians it takes from the page's runs and the peers' outputs, and its
arguments. Nothing here is timed."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.cpython._bench_modules import load_bench

GIB_MB = (1 << 30) / 1e6


def _floor() -> ModuleType:
    return load_bench("floor")


#: CPU-s per GiB of the shape bench/floor.py measures (all Chromium; kernels: one thread).
MEASURED = {
    "read": 1.0,
    "send": {"hold": 2.0, "fileblob": 1.5, "u8": 1.75},
    "receive": {"blob": 2.0, "discard": 1.0, "respblob": 1.8},
    "kernels": {"gear_scan": 0.4, "blake3_64k": 0.45, "sha256": 2.2, "crc64": 0.38,
                "records_lz4_random": 0.74, "records_bg4_floats": 2.4, "records_raw": 0.43,
                "decode_raw": 0.05, "decode_bg4_floats": 0.28},
    "server_upload": 2.5,
    "server_download": 0.45,
    "mb_s": {"native_upload": 310.0, "hfjs_upload": 50.0, "native_download": 290.0,
             "hfjs_download": 85.0, "xetchunk_hash": 100.0},
}  # fmt: skip


def test_floors_add_the_parts_per_target() -> None:
    out = _floor().floors(MEASURED, cores=2)
    # read + gear + BLAKE3 + SHA-256 + CRC + the cheapest send mode (fileblob)
    assert out["upload_min"]["parts"]["send (fileblob)"] == 1.5
    assert out["upload_min"]["chromium_cpu_s_per_gib"] == pytest.approx(5.93)
    # + the records as built (half LZ4 attempt on random, half BG4 + LZ4) + today's hold
    assert out["upload_today"]["chromium_cpu_s_per_gib"] == pytest.approx(7.62)
    # the cheaper receive into a Blob (respblob); today's goes through the page (blob)
    assert out["download_min"]["parts"] == {"receive (respblob)": 1.8, "blake3": 0.45}
    assert out["download_today"]["chromium_cpu_s_per_gib"] == pytest.approx(2.615)
    assert out["hashfile"]["chromium_cpu_s_per_gib"] == pytest.approx(1.85)
    # two cores: wall >= (Chromium + server) / 2
    assert out["upload_min"]["wall_s_per_gib_at_least"] == pytest.approx(4.215)
    assert out["upload_min"]["best_mb_s"] == pytest.approx(round(GIB_MB / 4.215, 1))
    assert out["hashfile"]["best_mb_s"] == pytest.approx(round(GIB_MB / 0.925, 1))
    v = out["verdicts"]
    assert v["upload_chromium"] == {"target": 8.0, "floor_min": 5.93, "floor_today": 7.62,
                                    "reachable": True}  # fmt: skip
    assert v["download_chromium"]["reachable"] is True
    assert v["upload_vs_native"]["best_ratio"] == pytest.approx(0.82)
    assert v["upload_vs_native"]["reachable"] is True
    # today's design: (7.62 + 2.5) / 2 s per GiB
    assert v["upload_vs_native"]["best_ratio_today"] == pytest.approx(round(GIB_MB / 5.06 / 310, 2))
    assert v["upload_vs_hfjs"]["best_ratio"] == pytest.approx(5.09)
    # (1.8 + 0.45 + 0.45) / 2 s per GiB
    assert v["download_vs_hfjs"]["best_ratio"] == pytest.approx(round(GIB_MB / 1.35 / 85, 2))
    assert v["hashfile_vs_xetchunk"]["best_ratio"] == pytest.approx(11.61)
    assert "measured_ratio" not in v["hashfile_vs_xetchunk"]
    timed = {**MEASURED, "hashfile_workers": {"cpu_s_per_gib": 2.1, "mb_s": 850.0}}
    hashed = _floor().floors(timed)["verdicts"]["hashfile_vs_xetchunk"]
    assert (hashed["measured_mb_s"], hashed["measured_ratio"]) == (850.0, 8.5)
    assert hashed["reachable_measured"] is True
    slow = {**MEASURED, "hashfile_workers": {"cpu_s_per_gib": 2.1, "mb_s": 290.0}}
    hashed = _floor().floors(slow)["verdicts"]["hashfile_vs_xetchunk"]
    assert (hashed["reachable"], hashed["reachable_measured"]) == (True, False)


def test_a_floor_above_the_target_is_unreachable() -> None:
    slow = {**MEASURED, "read": 3.0, "mb_s": {**MEASURED["mb_s"], "native_upload": 600.0}}
    out = _floor().floors(slow, cores=2)
    assert out["upload_min"]["chromium_cpu_s_per_gib"] == pytest.approx(7.93)
    assert out["verdicts"]["upload_chromium"]["reachable"] is True  # 7.93 <= 8
    # (7.93 + 2.5) / 2 s per GiB: 205.9 MB/s, 0.34x of 600
    assert out["verdicts"]["upload_vs_native"]["best_ratio"] == pytest.approx(0.34)
    assert out["verdicts"]["upload_vs_native"]["reachable"] is False
    slower = {**slow, "read": 3.5}
    assert _floor().floors(slower)["verdicts"]["upload_chromium"]["reachable"] is False


def test_without_peers_no_ratio_is_claimed() -> None:
    bare = {k: v for k, v in MEASURED.items() if k not in ("server_upload", "mb_s")}
    v = _floor().floors(bare)["verdicts"]
    assert set(v) == {"upload_chromium", "download_chromium"}


def _run(phase: str, mode: str, total: float, mb_s: float, load: float) -> dict:
    return {"phase": phase, "mode": mode, "cpu_s_per_gib": {"total_client": total, "page": 1.0},
            "mb_s": mb_s, "load_average": load}  # fmt: skip


def _kernels_run() -> dict:
    """A ``kernels/raw`` run whose single-thread costs are MEASURED's."""
    gbps = {k: (1 << 30) / 1e9 / v for k, v in MEASURED["kernels"].items()}
    return {"phase": "kernels", "mode": "raw", "gbps": gbps, "load_average": 1.0}


def test_summary_medians_feed_the_floors() -> None:
    floor = _floor()
    runs = [
        _run("read", "slices", 1.0, 900, 1.0),
        _run("read", "slices", 1.4, 800, 2.0),
        _run("read", "slices", 1.2, 850, 1.5),
        _run("send", "hold", 2.0, 400, 1.0),
        _run("send", "fileblob", 1.5, 500, 1.0),
        _run("receive", "blob", 2.0, 600, 1.0),
        _run("receive", "discard", 1.0, 900, 1.0),
    ]
    runs.append(_kernels_run())
    summary = floor.summarize(runs)
    assert summary["read/slices"]["cpu_s_per_gib"]["total_client"] == {
        "median": 1.2, "min": 1.0, "max": 1.4}  # fmt: skip
    assert summary["read/slices"]["mb_s"]["median"] == 850
    measured = floor.measured_figures(summary)
    assert measured["read"] == 1.2
    assert measured["send"] == {"hold": 2.0, "fileblob": 1.5}
    assert measured["kernels"]["sha256"] == pytest.approx(2.2)


def test_peer_figures_from_peers_and_browser_outputs() -> None:
    def peers(server_up: float, native_up: float) -> dict:
        runs = {
            "upload": [{"server": server_up}, {"server": server_up + 1}],
            "download": [{"server": 0.4}, {"server": 0.5}],
        }
        row = {"size_mib": 1024, "cpu_s_per_gib": {"xet": runs}}
        for peer, up, down in (
            ("native", native_up, 290.0),
            ("hfjs", 50.0, 80.0),
            ("xet", 120.0, 300.0),
        ):
            row[f"{peer}_upload_mb_s"] = {"median": up}
            row[f"{peer}_download_mb_s"] = {"median": down}
        return {"sizes": [row, {**row, "size_mib": 256}]}

    browser = {"throughput": {"xetchunk_wasm_mb_s": 90.0, "chunk_hash_mb_s": 200.0}}
    browser2 = {"throughput": {"xetchunk_wasm_mb_s": 110.0, "chunk_hash_mb_s": 220.0}}
    out = _floor().peer_figures([peers(2.0, 300.0), peers(3.0, 320.0)], [browser, browser2],
                                1024)  # fmt: skip
    assert out["server_upload"] == 3.0  # median of 2, 3, 3, 4
    assert out["server_download"] == 0.45
    assert out["mb_s"]["native_upload"] == 310.0
    assert out["mb_s"]["xetchunk_hash"] == 100.0
    assert out["mb_s"]["xet_hash"] == 210.0


def test_arguments() -> None:
    floor = _floor()
    args = floor.parse_args(["--send-modes", "hold,fileblob", "--repeat", "3"])
    assert args.send_modes == ["hold", "fileblob"] and args.repeat == 3
    assert floor.parse_args([]).send_modes == list(floor.SEND_MODES)
    with pytest.raises(SystemExit):
        floor.parse_args(["--send-modes", "hold,pigeon"])
    with pytest.raises(SystemExit):
        floor.parse_args(["--repeat", "0"])


def test_combined_beside_the_sum_of_its_parts() -> None:
    floor = _floor()
    runs = [
        _run("read", "slices", 1.2, 850, 1.0),
        _run("send", "fileblob", 2.5, 450, 1.0),
        _run("upload", "combined", 13.0, 130, 2.0),
        _run("upload", "combined", 14.0, 120, 3.0),
        _run("upload", "combined", 13.5, 125, 2.5),
        _run("upload", "combined_slices", 7.0, 230, 2.0),
    ]
    runs.append(_kernels_run())
    out = floor.combined_floor(floor.summarize(runs))
    assert out is not None
    assert (out["combined"], out["combined_min"], out["combined_max"]) == (13.5, 13.0, 14.0)
    assert out["mb_s"] == 125 and out["per_role"]["page"] == 1.0
    # read 1.2 + gear 0.4 + BLAKE3 0.45 + SHA-256 2.2 + CRC 0.38 + fileblob 2.5
    assert out["parts"] == {"read": 1.2, "gear+blake3+sha256": 3.05, "crc64": 0.38,
                            "send (fileblob)": 2.5}  # fmt: skip
    assert out["sum_of_parts"] == pytest.approx(7.13)
    assert out["combined_over_sum"] == pytest.approx(6.37)
    assert out["target"] == 8.0 and out["within_target"] is False
    # within the target when the combined run is; no parts alone, no sum
    alone = floor.combined_floor(floor.summarize(runs[4:6]), target=14.0)
    assert alone is not None and alone["within_target"] is True and "sum_of_parts" not in alone
    assert floor.combined_floor(floor.summarize(runs[:2])) is None


def test_part_and_body_selectors() -> None:
    floor = _floor()
    args = floor.parse_args(["--parts", "read,combined", "--combined-bodies", "copy,slices"])
    assert args.parts == ["read", "combined"] and args.combined_bodies == ["copy", "slices"]
    defaults = floor.parse_args([])
    assert defaults.parts == list(floor.PARTS) and defaults.combined_bodies == ["records"]
    with pytest.raises(SystemExit):
        floor.parse_args(["--parts", "read,teleport"])
    with pytest.raises(SystemExit):
        floor.parse_args(["--combined-bodies", "zip"])


def test_receive_modes_and_worker_options() -> None:
    floor = _floor()
    args = floor.parse_args(["--receive-modes", "blob,wblob512,wsplit64,wstream",
                             "--worker-spin-us", "1500", "--receive-workers", "2"])  # fmt: skip
    assert args.receive_modes == ["blob", "wblob512", "wsplit64", "wstream"]
    assert (args.worker_spin_us, args.receive_workers) == (1500, 2)
    assert floor.parse_args([]).receive_modes == ["discard", "blob", "respblob"]
    for bad in ("wblob", "wblob0", "wsplitx", "teleport"):
        with pytest.raises(SystemExit):
            floor.parse_args(["--receive-modes", bad])


def test_bodies_must_hold_the_source_bytes() -> None:
    import hashlib

    floor = _floor()
    want = hashlib.sha256(floor._FloorHandler.pattern[: 64 << 20]).hexdigest()
    floor.check_bodies([{"mode": "wblob512", "bodySha256": [want, want]},
                        {"mode": "blob"}], 64)  # fmt: skip
    with pytest.raises(RuntimeError, match="wstream"):
        floor.check_bodies([{"mode": "wstream", "bodySha256": [want, "0" * 64]}], 64)
