"""The records fuzzer in the default test run: scripts/fuzz_records.sh runs every input of the
regression corpus (tests/fuzz/corpus) through the natively built record kernels under
AddressSanitizer and UBSan, then fuzzes for a short, fixed time (XET_FUZZ_SECONDS, default 20;
libFuzzer's seed is fixed, see the script). Longer runs: ``bash scripts/fuzz_records.sh 600``.
The shipped .wasm meets the same corpus in test_kernels_records.py."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fuzz" / "corpus"


def test_records_fuzzer_short_run() -> None:
    seconds = int(os.environ.get("XET_FUZZ_SECONDS", "20"))
    proc = subprocess.run(
        ["bash", "scripts/fuzz_records.sh", str(seconds)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=seconds + 600,
        check=False,
    )
    report = proc.stdout[-2000:] + proc.stderr[-8000:]
    assert proc.returncode == 0, report  # a finding: the input is in .cache/fuzz/ (see above)
    executed = re.search(r"stat::number_of_executed_units: (\d+)", proc.stderr)
    assert executed is not None, report
    corpus_size = sum(1 for p in CORPUS.iterdir() if p.is_file())  # (no corpus: an error)
    assert corpus_size >= 100
    assert int(executed.group(1)) > corpus_size, report  # the corpus, then new inputs
