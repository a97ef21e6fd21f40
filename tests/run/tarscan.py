#!/usr/bin/env python3
"""tarscan.py VALUE ARCHIVE...: looks for VALUE in every member of each
archive, decompressing gzip and zstd members and descending into tars
(layers); prints each hit as ARCHIVE:MEMBER, then "scanned N" when none.
Used by tests/run/lifecycle.sh (secrets never reach an image)."""
import gzip
import io
import subprocess
import sys
import tarfile


def unpack(data):
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return subprocess.run(["zstd", "-dc"], input=data, stdout=subprocess.PIPE, check=True).stdout
    return data


def scan(data, where, value, hits):
    data = unpack(data)
    if value in data:
        hits.append(where)
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t:
                if m.isfile():
                    scan(t.extractfile(m).read(), where + ":" + m.name, value, hits)
                elif value in (m.name + m.linkname).encode():
                    hits.append(where + ":" + m.name)
    except tarfile.TarError:
        pass


def main():
    value = sys.argv[1].encode()
    hits = []
    for path in sys.argv[2:]:
        with open(path, "rb") as f:
            scan(f.read(), path, value, hits)
    print("\n".join(hits) if hits else "scanned %d" % len(sys.argv[2:]))


main()
