#!/usr/bin/env python3
"""Writes the hand-written seed programs of fuzz/seeds/ (committed; rerun after
changing how fuzz_abi.c decodes its input). Usage: python3 fuzz/write_seeds.py

A program is a sequence of calls: one opcode byte (mod 32) and its arguments,
read in the order fuzz_abi.c reads them (integers little-endian; an exhausted
input reads as zeros). See fuzz/README.md for the opcodes.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")

CREATE, DESTROY, GETTERS, BATCH_VS_SINGLE, REPEAT, EMBED_BATCH, EMBED = 29, 25, 22, 27, 28, 14, 0
CACHED, SLOT0, INVALID = 0, 9, 13          # pick_handle: cached (< 9), slot 0..3 (9..12), invalid (13..)
AT_END, AT_START, ON_HEAP, IS_NULL, MISALIGNED = 0, 6, 9, 13, 15
TINY_BERT, NULL_PATH, EMPTY_PATH, DIRECTORY, MISSING, DEV_NULL, FUZZED_NAME = 0, 16, 17, 18, 19, 20, 21
CPU, AUTO, BOGUS_DEVICE = 2, 5, 15


def u32(v):
    return struct.pack("<I", v)


def ids_in_vocab(seed=1):
    return u32(seed) + bytes([0, 0])                     # mode 0, no patches


def ids_with_patch(at, interesting_index):
    return u32(7) + bytes([0, 1]) + u32(at) + bytes([1, interesting_index])


def mask_ones():
    return u32(0) + bytes([2, 0])


def mask_prefix(length):
    return u32(0) + bytes([0]) + struct.pack("<H", length) + bytes([0])


def types_zero():
    return u32(0) + bytes([0, 0])


def embed(handle, placements=(AT_END,) * 4, ids=None, mask=None, types=None):
    return bytes([EMBED, *handle, *placements]) + (ids or ids_in_vocab()) + (mask or mask_ones()) + (types or types_zero())


def create(slot, model, device, seq=(7,), out_dim=(5,), threads=0, strict=1, name=b""):
    """seq (7,) = 16, out_dim (5,) = 32, threads 0 = 1, strict 1 = off; `name` for FUZZED_NAME."""
    path = bytes([model]) + (bytes([len(name)]) + name if model == FUZZED_NAME else b"")
    # Devices 5..18 read one more byte (odd: ask for "CPU" instead): 0 keeps the device.
    keep = b"\0" if 5 <= device < 19 else b""
    return bytes([CREATE, slot]) + path + bytes([device]) + keep + bytes([*seq, *out_dim, threads, strict])


SEEDS = {
    # One embed on the cached tiny_bert handle, every array at the end of a guarded arena.
    "embed_cached": embed((CACHED, 0)),
    # The same with arrays on the heap, at arena starts, a NULL mask, an out-of-vocab id.
    "embed_placements": embed((CACHED, 1), (ON_HEAP, AT_START, IS_NULL, ON_HEAP), ids_with_patch(3, 15))
    + embed((CACHED, 2), (AT_START, AT_END, AT_END, AT_START), mask=mask_prefix(3)),
    # create tiny_bert on the CPU into slot 0, embed, getters, destroy twice, embed on the stale handle.
    "create_embed_destroy": create(0, TINY_BERT, CPU)
    + embed((SLOT0,))
    + bytes([GETTERS, SLOT0])
    + bytes([DESTROY, 0, 0])
    + bytes([EMBED, INVALID, 1, 0])
    + bytes([GETTERS, INVALID, 1, 0]),
    # Creates that must fail: NULL, "", a directory, a missing file, /dev/null, a bad device, seq_len > 2^20.
    "bad_creates": create(0, NULL_PATH, CPU)
    + create(1, EMPTY_PATH, CPU)
    + create(2, DIRECTORY, CPU)
    + create(3, MISSING, AUTO)
    + create(0, DEV_NULL, CPU)
    + create(1, TINY_BERT, BOGUS_DEVICE)
    + create(2, TINY_BERT, CPU, seq=(4, 34))                    # INT64_MAX
    + create(3, TINY_BERT, CPU, seq=(4, 43), out_dim=(2, 2))    # 2^20 + 1, out_dim -1
    + create(0, FUZZED_NAME, CPU, name=b"tiny_bert"),           # models/test/tiny_bert: no .onnx
    # embed_batch: 3 rows with ragged masks, then 40 rows (two runs), then rows = -1.
    "batch": bytes([EMBED_BATCH, CACHED, 0, 3, 2, *[AT_END] * 4]) + ids_in_vocab(3) + mask_prefix(5) + types_zero()
    + bytes([EMBED_BATCH, CACHED, 0, 2, 39, *[ON_HEAP] * 4]) + ids_in_vocab(4) + mask_prefix(9) + types_zero()
    + bytes([EMBED_BATCH, CACHED, 0, 0, 2]),
    # The batch contract and the repeat check on several cached handles.
    "batch_vs_single": bytes([BATCH_VS_SINGLE, 0, 5]) + ids_in_vocab(5) + mask_prefix(4) + types_zero() + bytes([1, 1])
    + bytes([BATCH_VS_SINGLE, 7, 3]) + ids_in_vocab(6) + mask_prefix(2) + types_zero() + bytes([1, 0])
    + bytes([REPEAT, 3]) + ids_in_vocab(7) + mask_prefix(6),
    # Getters and embeds on NULL, wild and token-like values.
    "invalid_handles": bytes([GETTERS, INVALID, 0, GETTERS, INVALID, 3]) + bytes(range(1, 9))
    + bytes([GETTERS, INVALID, 4, 1, 0, 0])
    + bytes([EMBED, INVALID, 5, EMBED_BATCH, INVALID, 6, 35, 3, 1])
    + bytes([DESTROY, 3, 0, DESTROY, 3, 4, 2, 0, 0]),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, program in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(program)
        print(f"{name}: {len(program)} bytes")
