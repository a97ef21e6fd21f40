#!/usr/bin/env python3
"""Flattens an image from an OCI archive (what `kiln save --format oci-archive` writes), independently of
kiln's own code, so that build tests check what any OCI consumer would see.

usage: ociflat.py ARCHIVE OUTDIR
writes OUTDIR/config.json (the image config), OUTDIR/manifest.json, OUTDIR/list (one line per path of the
flattened rootfs: path<TAB>type<TAB>mode<TAB>uid:gid<TAB>link target) and OUTDIR/root/ (regular files with
their content, directories, symlinks; no ownership)."""
import io
import json
import os
import stat
import sys
import tarfile

archive, out = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, "root"), exist_ok=True)
outer = tarfile.open(archive)


def blob(digest):
    algo, hexd = digest.split(":", 1)
    return outer.extractfile(f"blobs/{algo}/{hexd}").read()


index = json.loads(outer.extractfile("index.json").read())
desc = index["manifests"][0]
manifest = json.loads(blob(desc["digest"]))
if "manifests" in manifest:  # an index: take the first manifest
    manifest = json.loads(blob(manifest["manifests"][0]["digest"]))
config = json.loads(blob(manifest["config"]["digest"]))
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=1, sort_keys=True)
with open(os.path.join(out, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1, sort_keys=True)

entries = {}  # path -> (TarInfo, data)


def norm(name):
    name = name.lstrip("./") if name.startswith("./") else name.lstrip("/")
    return name.rstrip("/")


for layer in manifest["layers"]:
    data = blob(layer["digest"])
    if layer["mediaType"].endswith("zstd"):
        raise SystemExit("ociflat: zstd layers are not supported by this checker")
    t = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    members = t.getmembers()
    # Whiteouts apply to the lower layers only: handle them first.
    for m in members:
        name = norm(m.name)
        base = os.path.basename(name)
        parent = os.path.dirname(name)
        if base == ".wh..wh..opq":
            prefix = parent + "/" if parent else ""
            for p in [p for p in entries if p.startswith(prefix) and p != parent]:
                del entries[p]
        elif base.startswith(".wh."):
            target = os.path.join(parent, base[4:]) if parent else base[4:]
            for p in [p for p in entries if p == target or p.startswith(target + "/")]:
                del entries[p]
    for m in members:
        name = norm(m.name)
        if not name or os.path.basename(name).startswith(".wh."):
            continue
        if m.isdir() and name in entries and entries[name][0].isdir():
            entries[name] = (m, None)
            continue
        for p in [p for p in entries if p.startswith(name + "/")] if not m.isdir() else []:
            del entries[p]
        payload = t.extractfile(m).read() if m.isreg() else None
        if m.islnk():
            target = norm(m.linkname)
            payload = entries.get(target, (None, b""))[1]
        entries[name] = (m, payload)

types = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
         tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo"}
with open(os.path.join(out, "list"), "w") as f:
    for name in sorted(entries):
        m, payload = entries[name]
        kind = types.get(m.type, "other")
        f.write(f"/{name}\t{kind}\t{m.mode & 0o7777:04o}\t{m.uid}:{m.gid}\t{m.linkname if m.issym() or m.islnk() else ''}\n")
        dest = os.path.join(out, "root", name)
        if m.isdir():
            os.makedirs(dest, exist_ok=True)
        elif m.isreg() or m.islnk():
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as g:
                g.write(payload or b"")
        elif m.issym():
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if os.path.lexists(dest):
                os.unlink(dest)
            os.symlink(m.linkname, dest)
