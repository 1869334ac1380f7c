"""aggregate: every tool-run document under data/evaluation/ in one table."""

import os

__version__ = "2.0.0"

# polars' allocator (jemalloc) keeps freed pages for 10 s by default; the aggregate copies its long
# table a few times in a row (rechunk, filters, joins), so without this its resident memory is the
# sum of copies that no longer exist (10^6 cases: ~0.15 GB more at the peak; the aggregate bench).
# Read once, when polars is first imported; a value the user set is kept.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
