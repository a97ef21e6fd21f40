#!/usr/bin/env python3
"""sparse_cmp.py A B: compare two files through their data extents only
(SEEK_DATA/SEEK_HOLE), as `cmp` would but in time proportional to the data:
holes read as zeros, so two files are equal when they have the same size and
the same non-zero bytes at the same offsets. Exit 0 equal, 1 different.
sparse_cmp.py --blocks A prints the bytes allocated to A (du --block-size=1)."""
import os
import sys


def nonzero(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        out = []
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: only a hole to the end
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            off = data
            while off < hole:
                chunk = os.pread(fd, min(hole - off, 1 << 20), off)
                if not chunk:
                    break
                stripped = chunk.lstrip(b"\0")
                if stripped:
                    start = off + len(chunk) - len(stripped)
                    out.append((start, stripped.rstrip(b"\0")))
                off += len(chunk)
            pos = hole
        return size, out
    finally:
        os.close(fd)


def main():
    if sys.argv[1] == "--blocks":
        print(os.stat(sys.argv[2]).st_blocks * 512)
        return 0
    a, b = nonzero(sys.argv[1]), nonzero(sys.argv[2])
    if a[0] != b[0]:
        print(f"size {a[0]} != {b[0]}", file=sys.stderr)
        return 1
    # Merge runs so that different block layouts of the same bytes compare equal.
    def flat(runs):
        merged = []
        for off, data in runs:
            if merged and merged[-1][0] + len(merged[-1][1]) == off:
                merged[-1] = (merged[-1][0], merged[-1][1] + data)
            else:
                merged.append((off, data))
        return merged
    if flat(a[1]) != flat(b[1]):
        print("content differs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
