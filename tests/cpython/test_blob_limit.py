"""``downloadToBlob``'s size check (io/blob.py ``check_blob_size``): a download larger than
``maxBlobBytes`` (256 MiB by default) is refused before anything is fetched, with a typed error
that points to ``downloadStream``. The browser end to end: tests/browser/test_fresh_context.py."""

from __future__ import annotations

import pytest

from xet_pyodide.errors import XetBlobLimitError, XetError
from xet_pyodide.io.blob import MAX_BLOB_DOWNLOAD, check_blob_size

MIB = 1 << 20


def test_default_limit_is_256_mib() -> None:
    assert MAX_BLOB_DOWNLOAD == 256 * MIB
    check_blob_size(256 * MIB, None)  # exactly the limit is fine
    with pytest.raises(XetBlobLimitError) as info:
        check_blob_size(256 * MIB + 1, {})
    assert isinstance(info.value, XetError)
    message = str(info.value)
    assert "downloadStream" in message and "maxBlobBytes" in message and "256 MiB" in message


def test_a_range_counts_its_length_not_the_file() -> None:
    size = 4096 * MIB
    check_blob_size(size, {"range": [size - 10 * MIB, size]})
    check_blob_size(size, {"range": {"start": 0, "end": 256 * MIB}})
    with pytest.raises(XetBlobLimitError, match="257 MiB"):
        check_blob_size(size, {"range": [0, 257 * MIB]})


def test_max_blob_bytes_raises_or_lowers_the_limit() -> None:
    check_blob_size(2048 * MIB, {"maxBlobBytes": 4096 * MIB})
    check_blob_size(2048 * MIB, {"maxBlobBytes": float("inf")})
    with pytest.raises(XetBlobLimitError):  # null or undefined: the default applies
        check_blob_size(2048 * MIB, {"maxBlobBytes": None})
    with pytest.raises(XetBlobLimitError, match=r"2 MiB exceeds maxBlobBytes \(1 MiB\)"):
        check_blob_size(2 * MIB, {"maxBlobBytes": MIB})
