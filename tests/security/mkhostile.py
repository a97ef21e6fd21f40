#!/usr/bin/env python3
"""Hostile tars, OCI layouts and a misbehaving registry for tests/security.

Use it as a module from a case's inline python:

    import sys; sys.path.insert(0, os.environ["KILN_SOURCE_ROOT"] + "/tests/security")
    import mkhostile as mk
    t = mk.Tar().symlink("localetc", "/etc").file("localetc/x", b"x")
    open("layer.tar", "wb").write(t.bytes())
    mk.oci_layout("layout", [t.bytes()], ref="localhost/evil:1")
    mk.archive("layout", "evil.tar")          # oci-archive: / kiln load

or from the shell:

    mkhostile.py serve --layout DIR --repo NAME --tag TAG --behaviour B --port-file F [--tls]

which serves the layout as a registry (/v2/) on 127.0.0.1 with one hostile
behaviour (see Handler). Only the standard library is used.
"""
import argparse
import gzip
import hashlib
import http.server
import io
import json
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import tarfile
import threading
import time

# ---------------------------------------------------------------- tar entries


def _octal(n, width):
    return ("%0*o" % (width - 1, n)).encode() + b"\0"


def raw_header(name, typeflag=b"0", size_field=None, size=0, break_checksum=False, linkname=b"", mode=0o644,
               uid=0, gid=0, mtime=0):
    """One ustar header block with free-form fields (names as bytes)."""
    if isinstance(name, str):
        name = name.encode("utf-8", "surrogateescape")
    if isinstance(linkname, str):
        linkname = linkname.encode("utf-8", "surrogateescape")
    if size_field is None:
        size_field = _octal(size, 12)
    elif isinstance(size_field, str):
        size_field = size_field.encode()
    h = bytearray(512)
    h[0:len(name[:100])] = name[:100]
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(uid, 8)
    h[116:124] = _octal(gid, 8)
    h[124:124 + len(size_field[:12])] = size_field[:12]
    h[136:148] = _octal(mtime, 12)
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[157:157 + len(linkname[:100])] = linkname[:100]
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    chk = sum(h)
    if break_checksum:
        chk += 1
    h[148:156] = ("%06o" % chk).encode() + b"\0 "
    return bytes(h)


def pad512(data):
    return data + b"\0" * ((-len(data)) % 512)


def pax_record(key, value):
    if isinstance(key, str):
        key = key.encode()
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n = len(str(n).encode()) + len(body)
    return str(n).encode() + body


class Tar:
    """A tar stream built entry by entry; nothing is sanitised."""

    def __init__(self):
        self.parts = []

    def _add(self, ti, data=b"", xattrs=None, pax=None):
        headers = dict(pax or {})
        for k, v in (xattrs or {}).items():
            headers["SCHILY.xattr." + k] = v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
        if headers:
            ti.pax_headers = headers
        ti.size = len(data)
        self.parts.append(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if data:
            self.parts.append(pad512(data))
        return self

    def _info(self, name, type_, mode, uid, gid, mtime):
        ti = tarfile.TarInfo(name)
        ti.name = name  # TarInfo() would strip a trailing slash
        ti.type = type_
        ti.mode = mode
        ti.uid, ti.gid, ti.mtime = uid, gid, mtime
        ti.uname = ti.gname = ""
        return ti

    def file(self, name, data=b"", mode=0o644, uid=0, gid=0, mtime=0, xattrs=None, pax=None):
        if isinstance(data, str):
            data = data.encode()
        return self._add(self._info(name, tarfile.REGTYPE, mode, uid, gid, mtime), data, xattrs, pax)

    def dir(self, name, mode=0o755, uid=0, gid=0, mtime=0, xattrs=None, pax=None):
        return self._add(self._info(name, tarfile.DIRTYPE, mode, uid, gid, mtime), b"", xattrs, pax)

    def symlink(self, name, target, mode=0o777, uid=0, gid=0, mtime=0, xattrs=None, pax=None):
        ti = self._info(name, tarfile.SYMTYPE, mode, uid, gid, mtime)
        ti.linkname = target
        return self._add(ti, b"", xattrs, pax)

    def hardlink(self, name, target, mode=0o644, uid=0, gid=0, mtime=0, xattrs=None, pax=None):
        ti = self._info(name, tarfile.LNKTYPE, mode, uid, gid, mtime)
        ti.linkname = target
        return self._add(ti, b"", xattrs, pax)

    def device(self, name, kind="chr", major=0, minor=0, mode=0o644):
        ti = self._info(name, {"chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind],
                        mode, 0, 0, 0)
        ti.devmajor, ti.devminor = major, minor
        return self._add(ti)

    def whiteout(self, name):
        return self.file(name, b"")

    def raw(self, data):
        self.parts.append(data)
        return self

    def bytes(self, end=True):
        return b"".join(self.parts) + (b"\0" * 1024 if end else b"")


def gz(data, level=6):
    return gzip.compress(data, compresslevel=level, mtime=0)


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- OCI layouts

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"


def put_blob(layout, data):
    """Writes DATA under blobs/sha256/ and returns its descriptor (no mediaType)."""
    d = sha256(data)
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(layout, "blobs", "sha256", d.split(":")[1]), "wb") as f:
        f.write(data)
    return {"digest": d, "size": len(data)}


def jdump(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def oci_layout(layout, layers, ref="localhost/hostile:latest", compress=True, config=None, mutate=None,
               raw_manifest=None, blobs=None, media_types=None):
    """An OCI layout holding one image whose layers are the uncompressed tars
    LAYERS (gzip'd when COMPRESS). CONFIG is merged into the image config's
    "config". MUTATE(parts) may change parts["layers"] (descriptors),
    parts["config"] (the config dict), parts["manifest"] (the manifest dict)
    or parts["index_entry"] before they are written. Returns parts."""
    os.makedirs(layout, exist_ok=True)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    parts = {"layers": [], "diff_ids": []}
    for i, tar in enumerate(layers):
        if blobs and i < len(blobs) and blobs[i] is not None:
            blob = blobs[i]  # the stored form as given (concatenated members, zstd, ...)
        else:
            blob = gz(tar) if compress else tar
        desc = put_blob(layout, blob)
        desc["mediaType"] = MT_LAYER_GZ if compress else MT_LAYER
        if media_types and i < len(media_types) and media_types[i] is not None:
            desc["mediaType"] = media_types[i]
        parts["layers"].append(desc)
        parts["diff_ids"].append(sha256(tar))
    cfg = {
        "architecture": host_arch(), "os": "linux", "created": "2020-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": list(parts["diff_ids"])},
        "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "mkhostile"} for _ in layers],
    }
    cfg["config"].update(config or {})
    parts["config"] = cfg
    parts["manifest"] = None
    parts["index_entry"] = None
    if mutate:
        mutate(parts)
    cdesc = put_blob(layout, parts.get("config_bytes") or jdump(parts["config"]))
    cdesc["mediaType"] = MT_CONFIG
    manifest = parts["manifest"] or {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc,
                                     "layers": parts["layers"]}
    parts["manifest"] = manifest
    if mutate:
        mutate(parts)
    mbytes = raw_manifest if raw_manifest is not None else parts.get("manifest_bytes") or jdump(manifest)
    mdesc = put_blob(layout, mbytes)
    mdesc["mediaType"] = MT_MANIFEST
    if ref:
        mdesc["annotations"] = {"org.opencontainers.image.ref.name": ref}
    entry = parts["index_entry"] or mdesc
    parts["index_entry"] = entry
    parts["manifest_digest"] = mdesc["digest"]
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(jdump({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [entry]}))
    return parts


def archive(layout, out):
    """A tar of the directory LAYOUT (an oci-archive)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        for root, dirs, files in os.walk(layout):
            dirs.sort()
            for name in sorted(files):
                p = os.path.join(root, name)
                t.add(p, arcname=os.path.relpath(p, layout), recursive=False)
    return out


def strip_end(tar):
    """The entries of the tar TAR without its end-of-archive blocks."""
    end = 0
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        for m in t:
            end = m.offset_data + ((m.size + 511) // 512) * 512 if m.isreg() else m.offset_data
    return tar[:end]


def image(via, busybox_tar, layer_tars, out, ref="localhost/hostile:latest", compress=True, mutate=None,
          blobs=None, media_types=None):
    """Writes an image of busybox plus the hostile layers LAYER_TARS (a list
    of uncompressed tars, bytes) for the transport VIA: "import" (one tar:
    busybox's entries then each layer's), "oci" (a layout directory) or
    "archive" (an oci-archive tar)."""
    bb = busybox_layer(busybox_tar)
    if isinstance(layer_tars, bytes):
        layer_tars = [layer_tars]
    if via == "import":
        with open(out, "wb") as f:
            f.write(strip_end(bb) + b"".join(strip_end(t) for t in layer_tars[:-1]) + layer_tars[-1])
        return None
    layout = out if via == "oci" else out + ".layout"
    # busybox's layer is gzip'd once per work dir (BUSYBOX_TAR.gz), so that
    # every image of a case shares it and the store unpacks it once
    cache = busybox_tar + ".gz"
    try:
        with open(cache, "rb") as f:
            bbgz = f.read()
    except OSError:
        bbgz = gz(bb, level=1)
        with open(cache + ".tmp", "wb") as f:
            f.write(bbgz)
        os.replace(cache + ".tmp", cache)
    # BLOBS and MEDIA_TYPES apply to the hostile layers (busybox's is gzip)
    parts = oci_layout(layout, [bb] + list(layer_tars), ref=ref, compress=compress, mutate=mutate,
                       blobs=[bbgz if compress else None] + list(blobs or []),
                       media_types=[None] + list(media_types or []))
    if via == "archive":
        archive(layout, out)
    return parts


def host_arch():
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(m, m)


def busybox_layer(busybox_tar):
    """The offline busybox rootfs tar (made by scripts/make-busybox-rootfs.sh)."""
    with open(busybox_tar, "rb") as f:
        return f.read()


# ---------------------------------------------------------------- hostile registry


class Handler(http.server.BaseHTTPRequestHandler):
    """A read-only registry over an OCI layout, with one misbehaviour:

    wrong-content   blobs: right length, one byte flipped
    wrong-manifest  manifests by digest: another (valid) manifest
    redirect-port   blobs: 307 to the same host on another port (the
                    "cdn" server), which logs any Authorization it gets
    auth-basic      every /v2/ request needs Basic auth (with redirect-port)
    slow            blobs: the headers, then 1 byte per --slow-interval s
    stall           blobs: the headers, then nothing
    reset-206 / reset-200 / reset-badrange
                    layer blobs: the first GET breaks off half-way; the
                    Range retry gets 206 (right), 200 (Range ignored) or 206
                    from the wrong offset
    none            behaves
    """
    protocol_version = "HTTP/1.1"
    server_version = "hostile/1"

    def log_message(self, fmt, *args):
        if self.server.log:
            self.server.log.write("%s %s\n" % (self.command, self.path))
            if self.headers.get("Authorization"):
                self.server.log.write("AUTH %s %s\n" % (self.server.name, self.headers.get("Authorization")))
            self.server.log.flush()

    def _send(self, code, body=b"", headers=None, head=False):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        srv = self.server
        if srv.log and self.headers.get("Authorization"):
            srv.log.write("AUTH %s %s %s\n" % (srv.name, self.path, self.headers.get("Authorization")))
            srv.log.flush()
        if srv.name == "cdn":
            # The redirect target: serves the blob (so the pull can finish).
            return self._blob(self.path.rsplit("/", 1)[-1], head, plain=True)
        if srv.behaviour == "auth-basic" or srv.behaviour == "redirect-port-auth":
            if not self.headers.get("Authorization"):
                return self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                  {"WWW-Authenticate": 'Basic realm="hostile"', "Content-Type": "application/json"},
                                  head)
        if self.path in ("/v2/", "/v2"):
            return self._send(200, b"{}", {"Content-Type": "application/json",
                                            "Docker-Distribution-API-Version": "registry/2.0"}, head)
        parts = self.path.split("/")
        # /v2/<repo...>/manifests/<ref> or /blobs/<digest>
        if len(parts) >= 5 and parts[-2] == "manifests":
            return self._manifest(parts[-1], head)
        if len(parts) >= 5 and parts[-2] == "blobs":
            return self._blob(parts[-1], head)
        return self._send(404, b'{"errors":[{"code":"NOT_FOUND"}]}', {"Content-Type": "application/json"}, head)

    def _read_blob(self, digest):
        p = os.path.join(self.server.layout, "blobs", "sha256", digest.split(":")[-1])
        if ":" not in digest or not os.path.isfile(p):
            return None
        with open(p, "rb") as f:
            return f.read()

    def _manifest(self, ref, head):
        srv = self.server
        with open(os.path.join(srv.layout, "index.json")) as f:
            index = json.load(f)
        entry = index["manifests"][0]
        if ref.startswith("sha256:"):
            body = self._read_blob(ref)
            if body is None:
                return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', {}, head)
            if srv.behaviour == "wrong-manifest" and srv.other_manifest is not None:
                body = srv.other_manifest
        else:
            body = self._read_blob(entry["digest"])
        return self._send(200, body, {"Content-Type": entry.get("mediaType", MT_MANIFEST),
                                      "Docker-Content-Digest": sha256(body)}, head)

    def _blob(self, digest, head, plain=False):
        srv = self.server
        body = self._read_blob(digest)
        if body is None:
            return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', {}, head)
        if not plain and srv.behaviour in ("redirect-port", "redirect-port-auth"):
            loc = "http://127.0.0.1:%d/cdn/%s" % (srv.cdn_port, digest)
            return self._send(307, b"", {"Location": loc}, head)
        if not plain and srv.behaviour == "wrong-content" and len(body) > 0 and not self._is_config(digest):
            body = bytearray(body)
            body[len(body) // 2] ^= 0xFF
            body = bytes(body)
        if not plain and srv.behaviour.startswith("reset-") and not self._is_config(digest):
            return self._reset(digest, body, head)
        if not plain and srv.behaviour in ("slow", "stall") and not self._is_config(digest):
            if not self._blob_headers(body, head):
                return
            try:
                if srv.behaviour == "stall":
                    time.sleep(3600)
                for i in range(len(body)):
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()
                    time.sleep(srv.slow_interval)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        return self._send(200, body, {"Content-Type": "application/octet-stream",
                                      "Docker-Content-Digest": digest}, head)

    def _blob_headers(self, body, head):
        """A 200 for the whole blob, headers only; False for a HEAD request
        (nothing more to send)."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        return not head

    def _reset(self, digest, body, head):
        """The first GET of a blob breaks off half-way; a retry with Range is
        answered as the behaviour says: reset-206 (correct), reset-200 (Range
        ignored, the whole blob), reset-badrange (206 from the wrong offset)."""
        srv = self.server
        with srv.lock:
            n = srv.gets.get(digest, 0)
            srv.gets[digest] = n + 1
        rng = self.headers.get("Range")
        if n == 0 or head:
            if not self._blob_headers(body, head):
                return
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if rng and rng.startswith("bytes=") and srv.behaviour != "reset-200":
            start = int(rng[6:].split("-")[0])
            if srv.behaviour == "reset-badrange":
                start = max(0, start - 100)
            part = body[start:]
            return self._send(206, part, {"Content-Type": "application/octet-stream",
                                          "Content-Range": "bytes %d-%d/%d" % (start, len(body) - 1, len(body))})
        return self._send(200, body, {"Content-Type": "application/octet-stream"})

    def _is_config(self, digest):
        return digest in self.server.config_digests


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(name, layout, behaviour, log, port=0):
    srv = Server(("127.0.0.1", port), Handler)
    srv.name, srv.layout, srv.behaviour, srv.log = name, layout, behaviour, log
    srv.slow_interval = 1.0
    srv.other_manifest = None
    srv.cdn_port = 0
    srv.config_digests = set()
    srv.lock = threading.Lock()
    srv.gets = {}
    if layout and os.path.exists(os.path.join(layout, "index.json")):
        with open(os.path.join(layout, "index.json")) as f:
            for e in json.load(f)["manifests"]:
                with open(os.path.join(layout, "blobs", "sha256", e["digest"].split(":")[1])) as mf:
                    m = json.load(mf)
                if "config" in m:
                    srv.config_digests.add(m["config"]["digest"])
    return srv


def self_signed(certdir):
    """A self-signed certificate for 127.0.0.1 (openssl CLI)."""
    key, crt = os.path.join(certdir, "key.pem"), os.path.join(certdir, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return crt, key


def serve(args):
    log = open(args.log, "a") if args.log else None
    srv = make_server("registry", args.layout, args.behaviour, log)
    srv.slow_interval = args.slow_interval
    if args.other_manifest:
        with open(args.other_manifest, "rb") as f:
            srv.other_manifest = f.read()
    threads = []
    if args.behaviour.startswith("redirect-port"):
        cdn = make_server("cdn", args.layout, "none", log)
        srv.cdn_port = cdn.server_address[1]
        threads.append(threading.Thread(target=cdn.serve_forever, daemon=True))
    if args.tls:
        crt, key = self_signed(args.tls)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    for t in threads:
        t.start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--layout", required=True)
    s.add_argument("--behaviour", default="none")
    s.add_argument("--port-file", required=True)
    s.add_argument("--log")
    s.add_argument("--tls", help="a directory for a self-signed certificate: serve HTTPS")
    s.add_argument("--slow-interval", type=float, default=1.0)
    s.add_argument("--other-manifest")
    i = sub.add_parser("image", help="busybox plus a hostile layer, for import, oci: or oci-archive:")
    i.add_argument("--via", choices=["import", "oci", "archive"], required=True)
    i.add_argument("--busybox", required=True)
    i.add_argument("--layer", required=True, action="append", help="a hostile layer, an uncompressed tar")
    i.add_argument("--out", required=True)
    i.add_argument("--ref", default="localhost/hostile:latest")
    b = sub.add_parser("arg-bomb", help="H36: ~60 KB of ARG An=${An-1}${An-1} after FROM busybox "
                       "(A16 on line 18 is 1 MiB, A17 on line 19 the first word over)")
    b.add_argument("out")
    args = ap.parse_args()
    if args.cmd == "arg-bomb":
        lines = ["FROM busybox", "ARG A0=" + "x" * 16]
        while sum(len(l) + 1 for l in lines) < 60000:
            n = len(lines) - 1
            lines.append("ARG A%d=${A%d}${A%d}" % (n, n - 1, n - 1))
        lines.append("RUN true")
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    elif args.cmd == "serve":
        serve(args)
    elif args.cmd == "image":
        layers = []
        for p in args.layer:
            with open(p, "rb") as f:
                layers.append(f.read())
        image(args.via, args.busybox, layers, args.out, ref=args.ref)


if __name__ == "__main__":
    main()
