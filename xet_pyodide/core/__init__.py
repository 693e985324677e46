"""Layer 2: the sans-I/O protocol core (chunking, hashes, xorb and shard formats).

Pure functions and small classes over bytes; every per-byte operation goes through
:func:`xet_pyodide.kernels.get_kernels`. Nothing here performs network I/O, imports ``js``
or reads a clock (timestamps are parameters).
"""
