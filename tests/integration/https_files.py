#!/usr/bin/env python3
"""A loopback HTTPS file server for tests/integration/build_add_url.sh.

usage: https_files.py ROOT CERT KEY PORTFILE LOG [--plain]

Serves the files under ROOT with ETag (sha256 of the content) and
Last-Modified, answers If-None-Match / If-Modified-Since with 304, and logs
one line per request to LOG: "METHOD PATH STATUS". Special paths:
  /redirect/NAME   302 to /NAME on the same server
  /to-http/NAME    302 to http://127.0.0.1:1/NAME (a downgrade)
  /disposition/NAME  the file NAME with Content-Disposition: attachment; filename="named.txt"
  /traversal/NAME  the file NAME with Content-Disposition: attachment; filename="../../etc/evil"
Writes the port it listens on to PORTFILE.
"""
import email.utils
import hashlib
import http.server
import os
import ssl
import sys

root, cert, key, portfile, log = sys.argv[1:6]
plain = "--plain" in sys.argv


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def note(self, status):
        with open(log, "a") as f:
            f.write("%s %s %d\n" % (self.command, self.path, status))

    def reply(self, status, headers=(), body=b""):
        self.note(status)
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?")[0]
        extra = []
        if path.startswith("/redirect/"):
            return self.reply(302, [("Location", "/" + path[len("/redirect/"):])])
        if path.startswith("/to-http/"):
            return self.reply(302, [("Location", "http://127.0.0.1:1/" + path[len("/to-http/"):])])
        if path.startswith("/disposition/"):
            path = "/" + path[len("/disposition/"):]
            extra.append(("Content-Disposition", 'attachment; filename="named.txt"'))
        if path.startswith("/traversal/"):
            path = "/" + path[len("/traversal/"):]
            extra.append(("Content-Disposition", 'attachment; filename="../../etc/evil"'))
        full = os.path.join(root, path.lstrip("/"))
        if ".." in path.split("/") or not os.path.isfile(full):
            return self.reply(404, body=b"not found\n")
        with open(full, "rb") as f:
            data = f.read()
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:32]
        mtime = int(os.stat(full).st_mtime)
        lm = email.utils.formatdate(mtime, usegmt=True)
        headers = [("ETag", etag), ("Last-Modified", lm)] + extra
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if inm is not None:
            if inm == etag:
                return self.reply(304, headers)
        elif ims is not None:
            t = email.utils.parsedate_to_datetime(ims).timestamp()
            if mtime <= t:
                return self.reply(304, headers)
        return self.reply(200, headers + [("Content-Type", "application/octet-stream")], data)


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
if not plain:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
