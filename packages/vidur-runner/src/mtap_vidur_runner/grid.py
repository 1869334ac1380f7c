"""VIDUR's profiling grid (which token counts, chunk sizes, batch sizes and KV lengths it profiles).

These are the same numbers as vidur 0.0.26's `vidur.profiling.utils` (MIT, microsoft/vidur):
`get_num_tokens_to_profile`, `get_attention_prefill_chunk_sizes_to_profile`,
`get_seq_lengths_to_profile`, `get_attention_batch_sizes_to_profile` and
`get_attention_input_combinations`. They are restated here (stdlib only) so the profiler runs on
a GPU machine where vidur is not installed; `tests/test_grid.py` checks them against the
installed vidur when it and torch are importable.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product


def num_tokens_to_profile(max_num_tokens: int) -> list[int]:
    """MLP-side token counts, largest first (as vidur orders them)."""
    space = (
        [1, 2, 4]
        + list(range(8, 1024, 8))
        + list(range(1024, 2 * 1024 + 1, 16))
        + list(range(2 * 1024, 4 * 1024 + 1, 32))
        + list(range(4 * 1024, 8 * 1024 + 1, 64))
        + list(range(8 * 1024, 16 * 1024 + 1, 128))
        + list(range(16 * 1024, 32 * 1024 + 1, 256))
        + list(range(32 * 1024, 64 * 1024 + 1, 512))
        + list(range(64 * 1024, 128 * 1024 + 1, 1024))
    )
    out = []
    for n in space:
        if n > max_num_tokens:
            break
        out.append(n)
    out.sort(reverse=True)
    return out


def attention_batch_sizes(min_batch_size: int, max_batch_size: int) -> list[int]:
    space = list(range(1, 128 + 1)) + list(range(128, 1024 + 1, 8))
    return [b for b in space if min_batch_size <= b <= max_batch_size]


def prefill_chunk_sizes(max_seq_len: int, max_chunk_size: int) -> list[int]:
    space = list(range(32, 128 + 1, 32)) + list(range(256, 1024 + 1, 128)) + list(range(1024, 8 * 1024 + 1, 512))
    out = []
    for c in space:
        if c <= max_seq_len and c <= max_chunk_size:
            out.append(c)
        else:
            break
    return out


def seq_lengths(max_seq_len: int) -> list[int]:
    space = (
        list(range(0, 1024 + 1, 32))
        + list(range(1024, 4 * 1024 + 1, 64))
        + list(range(4 * 1024, 64 * 1024 + 1, 256))
        + list(range(64 * 1024, 512 * 1024 + 1, 1024))
        + list(range(512 * 1024, 4096 * 1024 + 1, 4096))
        + list(range(4096 * 1024, 1100 * 1024 + 1, 16 * 1024))
    )
    out = []
    for s in space:
        if s < max_seq_len:
            out.append(s)
        else:
            break
    return out


@dataclass(frozen=True)
class AttentionInput:
    prefill_chunk_size: int
    kv_cache_size: int
    batch_size: int
    is_prefill: bool

    def is_valid(self, max_seq_len: int) -> bool:
        if self.is_prefill:
            return (
                self.batch_size == 1
                and self.prefill_chunk_size != 0
                and self.prefill_chunk_size + self.kv_cache_size <= max_seq_len
            )
        return self.prefill_chunk_size == 0 and self.kv_cache_size != 0 and self.kv_cache_size <= max_seq_len

    def is_under_memory_limit(self, max_num_tokens: int) -> bool:
        return self.batch_size * (self.kv_cache_size + self.prefill_chunk_size) <= max_num_tokens


def attention_inputs(
    max_seq_len: int,
    min_batch_size: int,
    max_batch_size: int,
    max_chunk_size: int,
    profile_only_prefill: bool = False,
    profile_only_decode: bool = False,
) -> list[AttentionInput]:
    """Every (chunk, kv, batch, is_prefill) combination vidur profiles, in vidur's order."""
    combos: list[tuple[int, int, int, bool]] = []
    for c in prefill_chunk_sizes(max_seq_len, max_chunk_size):
        kvs = [i * c for i in range(max_seq_len // c)]
        combos.extend(product([c], kvs, [1], [True]))
    if max_seq_len <= max_chunk_size:
        combos.extend(product(seq_lengths(max_seq_len), [0], [1], [True]))
    combos.extend(product([0], seq_lengths(max_seq_len), attention_batch_sizes(min_batch_size, max_batch_size), [False]))
    out = []
    for c, kv, b, is_prefill in combos:
        if is_prefill and profile_only_decode:
            continue
        if not is_prefill and profile_only_prefill:
            continue
        ai = AttentionInput(c, kv, b, is_prefill)
        if ai.is_valid(max_seq_len):
            out.append(ai)
    return out
