#!/usr/bin/env python3
"""Compares two images flattened by ociflat.py (kiln's and buildah's build of the same Containerfile) the way
a user of the image would notice: the set of paths, each path's type, permission bits, owner, symlink target
and file content, and the runtime fields of the config.

usage: flatdiff.py KILN_OUT OTHER_OUT [ALLOWED]
ALLOWED (optional) lists justified differences, one per line: `path /some/path REASON` (that path may differ
or exist on one side only), or `config FIELD REASON` (that config field may differ). Lines starting with #
are comments. Prints every difference not allowed, one per line, and exits 1 if there is any."""
import hashlib
import json
import os
import sys

a_dir, b_dir = sys.argv[1], sys.argv[2]
allowed_paths, allowed_fields = set(), set()
if len(sys.argv) > 3 and os.path.exists(sys.argv[3]):
    for line in open(sys.argv[3]):
        parts = line.split(None, 2)
        if len(parts) < 2 or parts[0].startswith("#"):
            continue
        (allowed_paths if parts[0] == "path" else allowed_fields).add(parts[1])

# buildah (--isolation chroot) leaves the empty mount points of a RUN step in the image: empty files
# /etc/hostname, /etc/hosts, /etc/resolv.conf and an empty /run. Docker and BuildKit do not, and neither
# does kiln (its generated files are mounted over the rootfs and never reach a layer). Allowed only in
# exactly that form: only in buildah's image, and empty.
EMPTY = hashlib.sha256(b"").hexdigest()[:16]
BUILDAH_RUN_LEFTOVERS = {"/etc/hostname": "file", "/etc/hosts": "file", "/etc/resolv.conf": "file", "/run": "dir"}
CONFIG_FIELDS = ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "StopSignal",
                 "Labels", "Healthcheck", "OnBuild", "Shell", "ArgsEscaped"]
IGNORED_LABELS = {"io.buildah.version"}  # buildah stamps its own version into every image


def load(d):
    entries = {}
    for line in open(os.path.join(d, "list")):
        path, kind, mode, owner, link = line.rstrip("\n").split("\t")
        content = ""
        if kind in ("file", "hardlink"):
            # Which of a set of hard links is stored as the file is the tool's choice: compare content.
            with open(os.path.join(d, "root", path.lstrip("/")), "rb") as f:
                content = hashlib.sha256(f.read()).hexdigest()[:16]
            kind, link = "file", ""
        entries[path] = (kind, mode, owner, link, content)
    config = json.load(open(os.path.join(d, "config.json"))).get("config") or {}
    labels = {k: v for k, v in (config.get("Labels") or {}).items() if k not in IGNORED_LABELS}
    config["Labels"] = labels or None
    return entries, config


a, a_cfg = load(a_dir)
b, b_cfg = load(b_dir)
diffs = []
for path in sorted(set(a) | set(b)):
    if path in allowed_paths or any(path.startswith(p + "/") for p in allowed_paths):
        continue
    if path not in b:
        diffs.append(f"{path}: only in kiln's image {a[path]}")
    elif path not in a:
        kind = BUILDAH_RUN_LEFTOVERS.get(path)
        if kind == b[path][0] and (kind == "dir" and not any(p.startswith(path + "/") for p in b)
                                   or kind == "file" and b[path][4] == EMPTY):
            continue
        diffs.append(f"{path}: only in buildah's image {b[path]}")
    elif a[path] != b[path]:
        names = ("type", "mode", "owner", "link", "content")
        what = ", ".join(f"{n} {x!r} vs {y!r}" for n, x, y in zip(names, a[path], b[path]) if x != y)
        diffs.append(f"{path}: {what}")
for field in CONFIG_FIELDS:
    x, y = a_cfg.get(field) or None, b_cfg.get(field) or None
    if x != y and field not in allowed_fields:
        diffs.append(f"config {field}: kiln {json.dumps(x)} vs buildah {json.dumps(y)}")
for d in diffs:
    print(d)
sys.exit(1 if diffs else 0)
