#!/usr/bin/env python3
"""Hostile and odd images for the ingest tests (tests/store/ingest_test.sh,
tests/security/cases/*): writes an OCI layout, an oci-archive or pushes to a
registry. Only the standard library (tarfile, gzip, hashlib, urllib).

  hostile_images.py layout DIR VARIANT [BUSYBOX_TAR]
  hostile_images.py archive FILE VARIANT [BUSYBOX_TAR]
  hostile_images.py push HOST:PORT VARIANT [BUSYBOX_TAR]   (as HOST:PORT/hostile:VARIANT)

The image is named "localhost/hostile:VARIANT" in layouts and archives. It
prints the digests that the tests grep for, one "key=value" per line:
layer1, layer2 (blob digests), manifest, config.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
D_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
D_CONFIG = "application/vnd.docker.container.image.v1+json"
D_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
D_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def canon(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def tar_of(entries):
    """entries: list of (name, data or None for a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gz(raw, level=6):
    return gzip.compress(raw, compresslevel=level, mtime=0)


def zero_bomb_tar(size):
    """A tar holding one file of `size` zero bytes, gzip-compressed in a
    stream (never the whole file in memory)."""
    out = io.BytesIO()
    hasher = hashlib.sha256()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as g:
        info = tarfile.TarInfo("zeros")
        info.size = size
        info.mtime = 0
        header = info.tobuf(format=tarfile.USTAR_FORMAT)
        g.write(header)
        hasher.update(header)
        chunk = b"\0" * (1 << 20)
        left = size
        while left > 0:
            n = min(left, len(chunk))
            g.write(chunk[:n])
            hasher.update(chunk[:n])
            left -= n
        pad = (512 - size % 512) % 512 + 1024
        g.write(b"\0" * pad)
        hasher.update(b"\0" * pad)
    return out.getvalue(), "sha256:" + hasher.hexdigest()


class Image:
    def __init__(self):
        self.blobs = {}  # digest -> bytes

    def add(self, data):
        d = sha(data)
        self.blobs[d] = data
        return {"digest": d, "size": len(data)}


def build(variant, busybox):
    """Returns (Image, top descriptor, info dict)."""
    img = Image()
    info = {}
    layers = []  # (descriptor, diff_id)
    docker = variant in ("urls_registry",)
    lt = D_LAYER if docker else MT_LAYER

    def layer(raw_tar, media=None):
        blob = gz(raw_tar)
        d = img.add(blob)
        d["mediaType"] = media or lt
        layers.append((d, sha(raw_tar)))
        return d

    if busybox:
        with open(busybox, "rb") as f:
            layer(f.read())
    if variant == "bomb":
        blob, diff = zero_bomb_tar(int(os.environ.get("BOMB_MIB", "200")) << 20)
        d = img.add(blob)
        d["mediaType"] = lt
        layers.append((d, diff))
    elif variant == "big":
        rnd = os.urandom(int(os.environ.get("BIG_MIB", "10")) << 20)
        layer(tar_of([("big", None), ("big/random", rnd)]))
    elif variant == "opaque":
        layer(tar_of([("etc", None), ("etc/a", b"a\n")]))
        layer(tar_of([("etc", None), ("etc/.wh..wh..opq", b""), ("etc/b", b"b\n")]))
    else:
        layer(tar_of([("etc", None), ("etc/one", b"1\n")]))
        layer(tar_of([("etc", None), ("etc/two", b"2\n")]))
    for i, (d, _) in enumerate(layers):
        info["layer%d" % i] = d["digest"]
        info["diff%d" % i] = layers[i][1]
    diff_ids = [x[1] for x in layers]
    if variant == "diffid_dup":
        diff_ids[-1] = diff_ids[-2]  # the last layer claims the one before's content
    elif variant == "diffid_count":
        diff_ids.append(diff_ids[-1])
    elif variant == "diffid_short":
        diff_ids.pop()
    cfg = {
        "architecture": os.environ.get("ARCH", "amd64"),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if variant == "bigconfig":
        cfg["config"]["Labels"] = {"big": "x" * (5 << 20)}
    cfg_bytes = canon(cfg)
    c = img.add(cfg_bytes)
    c["mediaType"] = D_CONFIG if docker else MT_CONFIG
    info["config"] = c["digest"]
    descs = [dict(x[0]) for x in layers]
    if variant == "size0":
        descs[-1]["size"] = 0
    elif variant == "size_plus1":
        descs[-1]["size"] += 1
    elif variant == "size_minus1":
        descs[-1]["size"] -= 1
    elif variant in ("urls", "urls_registry"):
        url = os.environ["URLS_TARGET"]
        descs[-1]["urls"] = [url]
        if variant == "urls_registry":
            descs[-1]["mediaType"] = D_FOREIGN
    manifest = {"schemaVersion": 2, "mediaType": D_MANIFEST if docker else MT_MANIFEST, "config": c,
                "layers": descs}
    mb = canon(manifest)
    m = img.add(mb)
    m["mediaType"] = manifest["mediaType"]
    info["manifest"] = m["digest"]
    top = m
    if variant == "manifest_size_lie":
        top = dict(m)
        top["size"] += 1
    elif variant == "deepnest":
        for _ in range(int(os.environ.get("DEPTH", "10"))):
            ib = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [top]})
            top = img.add(ib)
            top["mediaType"] = MT_INDEX
    elif variant == "many":
        n = int(os.environ.get("MANY", "100000"))
        entry = {"mediaType": MT_MANIFEST, "digest": m["digest"], "size": m["size"],
                 "platform": {"architecture": "s390x", "os": "linux"}}
        entries = [dict(entry, annotations={"n": str(i)}) for i in range(n)]
        ib = canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries})
        top = img.add(ib)
        top["mediaType"] = MT_INDEX
    elif variant in ("cycle_self", "cycle_ab"):
        # Content-addressed blobs cannot form a cycle; a layout can lie about
        # the names of its files. A names B, B names A (or A names itself).
        a_name = "sha256:" + "a" * 64
        b_name = "sha256:" + "b" * 64 if variant == "cycle_ab" else a_name
        a = canon({"schemaVersion": 2, "mediaType": MT_INDEX,
                   "manifests": [{"mediaType": MT_INDEX, "digest": b_name, "size": 200}]})
        b = canon({"schemaVersion": 2, "mediaType": MT_INDEX,
                   "manifests": [{"mediaType": MT_INDEX, "digest": a_name, "size": 200}]})
        img.blobs[a_name] = a
        img.blobs[b_name] = b if variant == "cycle_ab" else a
        top = {"mediaType": MT_INDEX, "digest": a_name, "size": len(a)}
    return img, top, info


def write_layout(path, img, top, tag):
    os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
    for d, data in img.blobs.items():
        with open(os.path.join(path, "blobs", "sha256", d.split(":")[1]), "wb") as f:
            f.write(data)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    entry = dict(top)
    entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(path, "index.json"), "wb") as f:
        f.write(canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry]}))


def write_archive(path, img, top, tag):
    entries = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    entry = dict(top)
    entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    entries.append(("index.json", canon({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry]})))
    entries.append(("blobs", None))
    entries.append(("blobs/sha256", None))
    for d, data in img.blobs.items():
        entries.append(("blobs/sha256/" + d.split(":")[1], data))
    with open(path, "wb") as f:
        f.write(tar_of(entries))


def push(host, repo_tag, img, top):
    repo, tag = repo_tag.rsplit(":", 1)
    base = "http://%s/v2/%s" % (host, repo)
    for d, data in img.blobs.items():
        if d == top["digest"]:
            continue
        req = urllib.request.Request(base + "/blobs/uploads/", method="POST", data=b"")
        with urllib.request.urlopen(req) as r:
            loc = r.headers["Location"]
        if loc.startswith("/"):
            loc = "http://%s%s" % (host, loc)
        loc += ("&" if "?" in loc else "?") + "digest=" + d
        req = urllib.request.Request(loc, method="PUT", data=data,
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(req).read()
    req = urllib.request.Request(base + "/manifests/" + tag, method="PUT", data=img.blobs[top["digest"]],
                                 headers={"Content-Type": top["mediaType"]})
    urllib.request.urlopen(req).read()


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = sys.argv[1]
    variant = sys.argv[3]
    busybox = sys.argv[4] if len(sys.argv) > 4 else None
    img, top, info = build(variant, busybox)
    info["top"] = top["digest"]
    if cmd == "layout":
        write_layout(sys.argv[2], img, top, "localhost/hostile:" + variant)
    elif cmd == "archive":
        write_archive(sys.argv[2], img, top, "localhost/hostile:" + variant)
    elif cmd == "push":
        push(sys.argv[2], "hostile:" + variant, img, top)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for k in sorted(info):
        print("%s=%s" % (k, info[k]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
