#!/usr/bin/env python3
"""Copies a rootfs tar, replacing entries with hostile ones (tests only).

  tarmod.py IN.tar OUT.tar [--fifo PATH]... [--symlink PATH=TARGET]...

--fifo etc/passwd      the entry becomes a FIFO (H12)
--symlink a=b          the entry becomes a symlink to b
"""
import argparse
import tarfile


def norm(name):
    return name[2:] if name.startswith("./") else name.lstrip("/")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--fifo", action="append", default=[])
    ap.add_argument("--symlink", action="append", default=[])
    a = ap.parse_args()
    fifos = {norm(p) for p in a.fifo}
    links = dict((norm(k), v) for k, v in (s.split("=", 1) for s in a.symlink))
    done = set()
    with tarfile.open(a.src) as src, tarfile.open(a.dst, "w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            n = norm(m.name)
            if n in fifos or n in links:
                e = tarfile.TarInfo(m.name)
                e.mode = 0o644
                if n in fifos:
                    e.type = tarfile.FIFOTYPE
                else:
                    e.type = tarfile.SYMTYPE
                    e.linkname = links[n]
                    e.mode = 0o777
                dst.addfile(e)
                done.add(n)
                continue
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        for n in sorted((fifos | set(links)) - done):
            e = tarfile.TarInfo("./" + n)
            if n in fifos:
                e.type = tarfile.FIFOTYPE
                e.mode = 0o644
            else:
                e.type = tarfile.SYMTYPE
                e.linkname = links[n]
                e.mode = 0o777
            dst.addfile(e)


if __name__ == "__main__":
    main()
