#!/usr/bin/env python3
"""Model-based test of kiln's image store (issue [2.1], item 2).

A reference model -- image IDs with their names, containers with their image,
what the registry and the saved archives hold -- is driven by random sequences
of import / build FROM an existing image / tag / rmi / rmi -f / prune /
prune -a / push / pull / save / load / run -d / rm -f, from fixed seeds, each
run on a fresh store as the unprivileged test user and as root. After every
operation:

  - `kiln prune --check` is clean (every blob re-hashed, every closure present),
  - `kiln images` lists exactly the model's images and names,
  - `kiln ps -a` lists exactly the model's containers, on the model's images,
  - every listed image runs `true` (`kiln run --rm --network none ID true`),
    and one of them (round robin) prints the /.lineage file the model
    expects (each build appends to it), so a layer mixed up between images is
    seen, not only a missing one.

Now and then an operation is killed with SIGKILL part-way through. Its effect
is then unknown: every image, name and container it touches must be either as
before or as after it, and the model takes what kiln shows for those (and
only those). The next command must work and all the checks above must hold.

Semantics modelled (podman's, docs/images.md and docs/run.md):
  - `rmi NAME` on an image with several names removes that name only;
    on its last name, or `rmi ID`, it removes the image. `rmi ID` of an image
    with several names, or of one a container uses, fails without -f;
    `-f` removes the containers that use it, then the image.
  - `tag` moves a name; an image that loses its last name stays, unnamed.
  - `prune` removes no image; `prune -a` removes the unnamed images no
    container uses.
  - `pull` gives the image the registry reference as name; `save NAME`
    records that name, `save ID` all names; `load` restores them.

Output: TAP, one line per (mode, seed). On failure the seed, the operations so
far, the last command's output and the model/kiln difference are printed as
TAP comments, with the command line that replays it:

  store_model.py --mode user --seed 3 --ops 57 -v

The operation sequence depends only on the seed and the model, so a replay
repeats it exactly up to the first killed operation (the outcome of a kill
depends on timing; --no-kill turns kills off).

Environment: KILN_BIN (the kiln binary), KILN_TEST_USER (when run as root: the
unprivileged user), KILN_MODEL_OPS (total operations over all runs; default
600), KILN_MODEL_SEEDS (comma-separated; default 1,2), KILN_MODEL_TODO
(comma-separated check names reported as TAP TODO while a known bug is open).
"""

import argparse
import collections
import copy
import io
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request

NAME_POOL = ["localhost/m0:latest", "localhost/m1:latest", "localhost/m2:v1", "localhost/m2:v2",
             "localhost/m3:latest"]
MAX_IMAGES = 4        # creation ops are skipped beyond this (keeps the per-op checks cheap)
MAX_CONTAINERS = 2
KILL_PROBABILITY = 0.07
CMD_TIMEOUT = 180


# Known differences from the modelled (podman's) behaviour, each with the
# issue that tracks it. When kiln shows the alternative outcome the model
# takes it and goes on, and a TAP line `not ok ... # TODO` names the
# difference; once kiln behaves as modelled the line turns `ok` by itself.
KNOWN = {
    "rmi-f-containers": ("`rmi -f` of an image a container uses removes that container too (podman)",
                         "issue 13 [2.1] item 1: kiln keeps the container"),
    "prune-a-in-use": ("`prune -a` keeps an unnamed image a container uses (podman)",
                       "issue 13 [2.1] item 1: kiln removes it"),
}


def short(name):
    """The CLI spelling of a full localhost name: localhost/m0:latest -> m0."""
    if name.startswith("localhost/"):
        n = name[len("localhost/"):]
        return n[:-len(":latest")] if n.endswith(":latest") else n
    return name


class Failure(Exception):
    def __init__(self, check, message):
        super().__init__(message)
        self.check = check
        self.message = message


class Result:
    def __init__(self, argv, rc, out, err, secs, killed=False):
        self.argv, self.rc, self.out, self.err, self.secs, self.killed = argv, rc, out, err, secs, killed

    def describe(self):
        s = "$ kiln %s\n  rc=%s%s (%.2f s)\n" % (" ".join(self.argv), self.rc, " KILLED" if self.killed else "",
                                                  self.secs)
        if self.out.strip():
            lines = self.out.strip().splitlines()
            if len(lines) > 12:
                lines = lines[:12] + ["... (%d more lines)" % (len(lines) - 12)]
            s += "  stdout: " + "\n          ".join(lines) + "\n"
        if self.err.strip():
            s += "  stderr: " + self.err.strip().replace("\n", "\n          ") + "\n"
        return s


class Kiln:
    """Runs the kiln binary as one mode's user on one store."""

    def __init__(self, binary, mode, store, user):
        self.binary, self.mode, self.store = binary, mode, store
        self.env = dict(os.environ)
        self.env.update({"KILN_ROOT": store, "SOURCE_DATE_EPOCH": ""})
        self.as_user = {}
        if mode == "user" and os.getuid() == 0:
            pw = pwd.getpwnam(user)
            self.env.update({"HOME": pw.pw_dir, "XDG_RUNTIME_DIR": "", "USER": pw.pw_name,
                             "LOGNAME": pw.pw_name})
            # not preexec_fn: the modes run in threads
            self.as_user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        self.log = []   # every command run, for a failure report
        self.secs = 0.0
        self.cmd_secs = collections.Counter()  # seconds per subcommand (run_many: per batch)

    def start(self, argv):
        return subprocess.Popen([self.binary] + argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env, text=True, errors="replace",
                                **self.as_user)

    def run_many(self, argvs):
        """Runs the commands at the same time; their results in order."""
        t0 = time.monotonic()
        procs = [self.start(a) for a in argvs]
        results = []
        for argv, p in zip(argvs, procs):
            try:
                out, err = p.communicate(timeout=CMD_TIMEOUT)
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                raise Failure("hang", "kiln %s did not finish in %d s" % (" ".join(argv), CMD_TIMEOUT))
            r = Result(argv, p.returncode, out, err, time.monotonic() - t0)
            self.log.append(r)
            results.append(r)
        self.secs += time.monotonic() - t0
        self.cmd_secs["run --rm (all images)"] += time.monotonic() - t0
        del self.log[:-40]
        return results

    def run(self, argv, kill_after=None):
        t0 = time.monotonic()
        p = self.start(argv)
        killed = False
        try:
            if kill_after is not None:
                try:
                    p.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    killed = True
            try:
                out, err = p.communicate(timeout=30 if killed else CMD_TIMEOUT)
            except subprocess.TimeoutExpired:
                if not killed:
                    raise
                # a child of the killed process still holds its stdout:
                # not waited for (a killed command's output is not used)
                p.wait()
                out, err = "", "(output not collected: a child process keeps the pipe open)"
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            r = Result(argv, p.returncode, out, err, time.monotonic() - t0)
            self.log.append(r)
            raise Failure("hang", "kiln %s did not finish in %d s\n%s" % (" ".join(argv), CMD_TIMEOUT,
                                                                        r.describe()))
        r = Result(argv, p.returncode, out, err, time.monotonic() - t0, killed)
        self.secs += r.secs
        self.cmd_secs[" ".join(argv[:2]) if argv[0] == "prune" else argv[0]] += r.secs
        self.log.append(r)
        del self.log[:-40]
        return r


class State:
    """What the store holds: image ID -> set of full names; container ID ->
    image ID."""

    def __init__(self):
        self.images = {}
        self.containers = {}

    def copy(self):
        s = State()
        s.images = {k: set(v) for k, v in self.images.items()}
        s.containers = dict(self.containers)
        return s

    def names(self):
        return {n: i for i, ns in self.images.items() for n in ns}

    def holder(self, name):
        for i, ns in self.images.items():
            if name in ns:
                return i
        return None

    def move_name(self, name, image_id):
        """kiln tag / build -t / import NAME / pull / load: the name moves;
        an image losing its last name stays, unnamed."""
        old = self.holder(name)
        if old is not None:
            self.images[old].discard(name)
        self.images.setdefault(image_id, set()).add(name)

    def add_unnamed(self, image_id):
        self.images.setdefault(image_id, set())

    def remove_image(self, image_id):
        self.images.pop(image_id, None)

    def users(self, image_id):
        return sorted(c for c, i in self.containers.items() if i == image_id)

    def __eq__(self, other):
        return self.images == other.images and self.containers == other.containers

    def render(self):
        lines = []
        for i in sorted(self.images):
            lines.append("image %s %s" % (i[:12], " ".join(sorted(self.images[i])) or "<none>"))
        for c in sorted(self.containers):
            lines.append("container %s on %s" % (c[:12], self.containers[c][:12]))
        return lines


def diff_states(model, seen):
    out = []
    for i in sorted(set(model.images) | set(seen.images)):
        a, b = model.images.get(i), seen.images.get(i)
        if a != b:
            fmt = lambda v: "absent" if v is None else (" ".join(sorted(v)) or "<none>")
            out.append("image %s: model %s, kiln %s" % (i[:12], fmt(a), fmt(b)))
    for c in sorted(set(model.containers) | set(seen.containers)):
        a, b = model.containers.get(c), seen.containers.get(c)
        if a != b:
            out.append("container %s: model %s, kiln %s" % (c[:12], (a or "absent")[:12], (b or "absent")[:12]))
    return out


class Op:
    """One planned operation: argv, the expected exit (True: 0, False:
    non-zero, None: either), and apply(state, result) -> the state after it."""

    def __init__(self, kind, argv, expect_ok=True, apply=None, creates=None, after_kill=None):
        self.kind, self.argv, self.expect_ok = kind, argv, expect_ok
        self._apply = apply or (lambda st, r, alt: st)
        # creates: (name or None, lineage) for ops whose new image ID is
        # only known from kiln's answer (import, build)
        self.creates = creates
        self.after_kill = after_kill  # extra model updates after a kill (archives, registry)

    def text(self):
        return " ".join(self.argv)

    def apply(self, st, r, alt=None):
        """The state after the op; known other outcomes go to `alt`."""
        return self._apply(st, r, alt)


class ModelRun:
    def __init__(self, args, mode, seed, nops, registry, busybox_tars, kill):
        self.args, self.mode, self.seed, self.nops = args, mode, seed, nops
        self.rng = random.Random("%s-%d" % (mode, seed))
        self.reg = registry
        self.busybox_tars = busybox_tars  # [(path, lineage)]
        self.kill = kill
        self.work = tempfile.mkdtemp(prefix="kiln-model-%s-%d." % (mode, seed))
        os.chmod(self.work, 0o755)
        self.store = os.path.join(self.work, "store")
        self.out_dir = os.path.join(self.work, "out")   # archives and iidfiles, written by kiln
        os.mkdir(self.out_dir)
        self.user = os.environ.get("KILN_TEST_USER", "")
        if mode == "user" and os.getuid() == 0:
            pw = pwd.getpwnam(self.user)
            os.chown(self.out_dir, pw.pw_uid, pw.pw_gid)
            os.chown(self.work, pw.pw_uid, pw.pw_gid)
        self.kiln = Kiln(args.kiln, mode, self.store, self.user)
        self.state = State()
        self.serial = {}          # image ID -> order first seen (stable choices)
        self.lineage = {}         # image ID -> expected /.lineage
        self.registry = {}        # reference -> set of possible image IDs (None: absent)
        self.archives = {}        # path -> [(names, image ID)]
        self.build_specs = []     # every build's context, for rebuilds
        self.ops_done = []
        self.counter = 0
        self.lineage_turn = 0
        self.stats = collections.Counter()
        self.alternatives = []
        self.conformed = collections.Counter()   # KNOWN key -> times kiln did as modelled
        self.diverged = collections.Counter()    # KNOWN key -> times kiln did the known other thing
        self.diverged_at = {}
        self.kills = 0
        self.check_secs = 0.0

    # ------------------------------------------------------------ helpers

    def token(self):
        self.counter += 1
        return "%s%d-%d" % (self.mode[0], self.seed, self.counter)

    def learn(self, image_id, lineage):
        if image_id not in self.serial:
            self.serial[image_id] = len(self.serial)
        if lineage is not None:
            old = self.lineage.get(image_id)
            if old is not None and old != lineage:
                raise Failure("lineage", "image %s was made twice with different contents:\n%r\n%r" %
                              (image_id[:12], old, lineage))
            self.lineage[image_id] = lineage

    def image_ids(self):
        return sorted(self.state.images, key=lambda i: self.serial.get(i, 1 << 30))

    def pick_image(self):
        ids = self.image_ids()
        return self.rng.choice(ids) if ids else None

    def ref_for(self, image_id, allow_id=True):
        """A way to name an image on the command line: one of its names, or its ID."""
        names = sorted(self.state.images[image_id])
        if names and (not allow_id or self.rng.random() < 0.8):
            return short(self.rng.choice(names)), True
        return image_id, False

    # ------------------------------------------------------------ planning

    def plan(self):
        st = self.state
        n_images = len(st.images)
        choices = []   # (weight, planner)
        full = n_images >= MAX_IMAGES
        choices.append((0.5 if n_images else 4, self.plan_import) if not full else (0, None))
        if any(st.images.values()) and not full:
            choices.append((2.5, self.plan_build))
        if not full and self.can_rebuild():
            choices.append((1, self.plan_rebuild))
        if n_images:
            choices += [(2, self.plan_tag), (1.5, self.plan_rmi), (1.5, self.plan_rmi_force), (1.2, self.plan_push),
                        (1, self.plan_save)]
            if len(st.containers) < MAX_CONTAINERS:
                choices.append((1, self.plan_run))
        choices += [(0.7, self.plan_prune), (1, self.plan_prune_all)]
        if self.registry and not full:
            choices.append((1.5, self.plan_pull))
        if self.archives and not full:
            choices.append((1, self.plan_load))
        if st.containers:
            choices.append((1.2, self.plan_rm))
        choices = [c for c in choices if c[0] > 0]
        total = sum(w for w, _ in choices)
        x = self.rng.random() * total
        for w, planner in choices:
            x -= w
            if x <= 0:
                return planner()
        return choices[-1][1]()

    def plan_import(self):
        tar, lineage = self.rng.choice(self.busybox_tars)
        tok = self.token()
        name = self.rng.choice(NAME_POOL) if self.rng.random() < 0.8 else None
        argv = ["import", "-q", "-m", tok, tar] + ([short(name)] if name else [])

        def apply(st, r, alt):
            iid = r.image_id
            if name:
                st.move_name(name, iid)
            else:
                st.add_unnamed(iid)
            return st
        return Op("import", argv, True, apply, creates=(name, lineage))

    def plan_build(self):
        # FROM takes a name: `FROM <image ID>` is not supported by kiln (buildah
        # resolves it), so the parent is one of the named images
        named = [i for i in self.image_ids() if self.state.images[i]]
        parent = self.rng.choice(named)
        ref, _ = self.ref_for(parent, allow_id=False)
        parent_name = [n for n in self.state.images[parent] if short(n) == ref][0]
        tok = self.token()
        ctx = os.path.join(self.work, "ctx-" + tok)
        os.mkdir(ctx)
        lineage = self.lineage[parent]
        lines = ["FROM " + ref]
        kinds = self.rng.sample(["copy", "run", "label"], self.rng.choice([1, 1, 2]))
        for k in kinds:
            if k == "copy":
                lineage += "copy " + tok + "\n"
                with open(os.path.join(ctx, "lineage"), "w") as f:
                    f.write(lineage)
                lines.append("COPY lineage /.lineage")
            elif k == "run":
                lineage += "run " + tok + "\n"
                lines.append("RUN echo 'run %s' >> /.lineage" % tok)
            else:
                lines.append("LABEL model.token=" + tok)
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("\n".join(lines) + "\n")
        for p in (ctx, os.path.join(ctx, "Containerfile"), os.path.join(ctx, "lineage")):
            if os.path.exists(p):
                os.chmod(p, 0o755 if os.path.isdir(p) else 0o644)
        spec = {"ctx": ctx, "lines": lines, "parent_name": parent_name, "parent": parent, "lineage": lineage}
        self.build_specs.append(spec)
        return self.build_op(spec, "build")

    def plan_rebuild(self):
        """The same Containerfile and context again, FROM the same image:
        its steps come from the build cache, whose blobs GC had to keep."""
        specs = [sp for sp in self.build_specs if self.state.holder(sp["parent_name"]) == sp["parent"]]
        return self.build_op(self.rng.choice(specs), "rebuild")

    def can_rebuild(self):
        return any(self.state.holder(sp["parent_name"]) == sp["parent"] for sp in self.build_specs)

    def build_op(self, spec, kind):
        ctx, lines, lineage = spec["ctx"], spec["lines"], spec["lineage"]
        name = self.rng.choice(NAME_POOL) if self.rng.random() < 0.7 else None
        iidfile = os.path.join(self.out_dir, "iid-" + self.token())
        argv = ["build", "-q", "--pull", "never", "--network", "none", "--iidfile", iidfile] + \
               (["-t", short(name)] if name else []) + [ctx]

        def apply(st, r, alt):
            if name:
                st.move_name(name, r.image_id)
            else:
                st.add_unnamed(r.image_id)
            return st
        op = Op(kind, argv, True, apply, creates=(name, lineage))
        op.iidfile = iidfile
        op.text_extra = " # " + " | ".join(lines)
        return op

    def plan_tag(self):
        src = self.pick_image()
        ref, _ = self.ref_for(src)
        target = self.rng.choice(NAME_POOL)

        def apply(st, r, alt):
            st.move_name(target, src)
            return st
        return Op("tag", ["tag", ref, short(target)], True, apply)

    def rmi_effect(self, st, image_id, ref, by_name, force, alt=None):
        """(expect_ok, new state) of `rmi [-f] ref`, as podman does; known
        other outcomes are appended to `alt` as (KNOWN key, state)."""
        st = st.copy()
        names = st.images[image_id]
        full = None
        if by_name:
            full = [n for n in names if short(n) == ref][0]
        if full is not None and len(names) > 1:
            names.discard(full)
            return True, st
        if full is None and len(names) > 1 and not force:
            return False, st
        if st.users(image_id) and not force:
            return False, st
        users = st.users(image_id)
        st.remove_image(image_id)
        if users and alt is not None:
            alt.append(("rmi-f-containers", st.copy()))
        for c in users:
            del st.containers[c]
        return True, st

    def plan_rmi(self, force=False):
        image_id = self.pick_image()
        ref, by_name = self.ref_for(image_id)
        ok, _ = self.rmi_effect(self.state, image_id, ref, by_name, force)

        def apply(st, r, alt):
            return self.rmi_effect(st, image_id, ref, by_name, force, alt)[1]
        return Op("rmi -f" if force else "rmi", ["rmi"] + (["-f"] if force else []) + [ref], ok, apply)

    def plan_rmi_force(self):
        return self.plan_rmi(force=True)

    def plan_prune(self):
        # now and then with the build cache (the next rebuild runs its steps again)
        cache = ["--cache"] if self.rng.random() < 0.2 else []
        return Op("prune", ["prune", "-f"] + cache, True)

    def plan_prune_all(self):
        def apply(st, r, alt):
            used = set(st.containers.values())
            unnamed = [i for i, ns in st.images.items() if not ns]
            if alt is not None and any(i in used for i in unnamed):
                other = st.copy()
                for i in unnamed:
                    other.remove_image(i)
                alt.append(("prune-a-in-use", other))
            for i in unnamed:
                if i not in used:
                    st.remove_image(i)
            return st
        return Op("prune -a", ["prune", "-a", "-f"], True, apply)

    def plan_push(self):
        image_id = self.pick_image()
        ref, _ = self.ref_for(image_id)
        dest = "%s/%s-%d/r%d:latest" % (self.reg, self.mode, self.seed, self.rng.randrange(3))
        op = Op("push", ["push", "-q", "--tls-verify=false", ref, "docker://" + dest], True)

        def after(done):
            if done:
                self.registry[dest] = {image_id}
            else:
                self.registry[dest] = self.registry.get(dest, {None}) | {image_id}
        op.after_kill = after
        return op

    def plan_pull(self):
        refs = sorted(self.registry)
        if self.rng.random() < 0.1:
            dest = "%s/%s-%d/never-pushed:latest" % (self.reg, self.mode, self.seed)
            op = Op("pull", ["pull", "-q", "--tls-verify=false", dest], False)
            # Nothing was pushed there: a killed pull must not name anything.
            op.pull_ref, op.pull_cands = dest, set()
            return op
        dest = self.rng.choice(refs)
        cands = self.registry[dest]
        expect = True if None not in cands else (False if cands == {None} else None)

        def apply(st, r, alt):
            iid = r.image_id
            if iid is None:
                return st
            st.move_name(dest, iid)
            return st
        op = Op("pull", ["pull", "-q", "--tls-verify=false", dest], expect, apply)
        op.pull_ref, op.pull_cands = dest, cands
        return op

    def plan_save(self):
        image_id = self.pick_image()
        ref, by_name = self.ref_for(image_id)
        fmt = self.rng.choice(["docker-archive", "oci-archive"])
        path = os.path.join(self.out_dir, "save-%s.tar" % self.token())
        if by_name:
            recorded = [([n for n in self.state.images[image_id] if short(n) == ref], image_id)]
        else:
            recorded = [(sorted(self.state.images[image_id]), image_id)]
        op = Op("save", ["save", "-o", path, "--format", fmt, ref], True)

        def after(done):
            if done or os.path.exists(path):
                self.archives[path] = recorded
        op.after_kill = after
        return op

    def plan_load(self):
        path = self.rng.choice(sorted(self.archives))
        recorded = self.archives[path]

        def apply(st, r, alt):
            for names, iid in recorded:
                if names:
                    for n in names:
                        st.move_name(n, iid)
                else:
                    st.add_unnamed(iid)
            return st
        return Op("load", ["load", "-q", "-i", path], True, apply)

    def plan_run(self):
        image_id = self.pick_image()
        ref, _ = self.ref_for(image_id)

        def apply(st, r, alt):
            st.containers[r.container_id] = image_id
            return st
        op = Op("run -d", ["run", "-d", "--network", "none", ref, "sleep", "3600"], True, apply)
        op.run_image = image_id
        return op

    def plan_rm(self):
        # container IDs are random: choose by position in creation order
        order = sorted(self.state.containers, key=lambda c: self.cserial[c])
        cid = order[self.rng.randrange(len(order))]

        def apply(st, r, alt):
            st.containers.pop(cid, None)
            return st
        return Op("rm -f", ["rm", "-f", cid], True, apply)

    # ------------------------------------------------------------ observing

    def observe(self):
        """kiln's view: images (ID -> names) and containers (ID -> image ID)."""
        r = self.kiln.run(["images", "--format", "json"])
        if r.rc != 0:
            raise Failure("images", "kiln images failed\n" + r.describe())
        try:
            rows = json.loads(r.out)
        except ValueError as e:
            raise Failure("images", "kiln images --format json: %s\n%s" % (e, r.describe()))
        seen = State()
        entries = ["%s (manifest %s): %s" % (row["Id"][:12], row.get("Digest", "")[7:19],
                                              " ".join(row.get("Names") or []) or "<none>") for row in rows]
        self.prev_entries, self.entries = getattr(self, "entries", []), entries
        for row in rows:
            iid = row["Id"].replace("sha256:", "")
            if iid in seen.images:
                # podman has one image per ID; two entries make `rmi ID` remove one of them
                raise Failure("images", "kiln images lists image %s twice (two manifests of one config):\n  %s" %
                              (iid[:12], "\n  ".join(entries)))
            names = seen.images.setdefault(iid, set())
            for n in row.get("Names") or []:
                if n in seen.names() and seen.names()[n] != iid:
                    raise Failure("images", "name %s listed on two images\n%s" % (n, r.describe()))
                names.add(n)
        if r.err.strip():
            raise Failure("images", "kiln images warns\n" + r.describe())
        r = self.kiln.run(["ps", "-a", "--format", "json"])
        if r.rc != 0:
            raise Failure("ps", "kiln ps -a failed\n" + r.describe())
        self.container_rows = {}
        for row in json.loads(r.out):
            seen.containers[row["Id"]] = (row.get("ImageID") or "").replace("sha256:", "")
            self.container_rows[row["Id"]] = row
        return seen

    def check(self, after_kill=False):
        t0 = time.monotonic()
        try:
            r = self.kiln.run(["prune", "--check"])
            if r.rc != 0 or "problem:" in r.out:
                raise Failure("check", "kiln prune --check is not clean\n" + r.describe())
            seen = self.observe()
            for key, alt in self.alternatives:
                if seen == self.state:
                    self.conformed[key] += 1
                elif seen == alt:
                    self.diverged[key] += 1
                    if key not in self.diverged_at:
                        self.diverged_at[key] = "%s seed %d op %d: kiln %s" % (
                            self.mode, self.seed, len(self.ops_done), self.ops_done[-1].text())
                    self.state = alt
            self.alternatives = []
            if seen != self.state:
                what = "containers" if seen.images == self.state.images else "images"
                raise Failure(what, "kiln differs from the model:\n  " +
                              "\n  ".join(diff_states(self.state, seen)))
            for cid, row in self.container_rows.items():
                if row.get("State") != "running" and cid not in self.maybe_stopped:
                    raise Failure("ps", "container %s (sleep 3600) is %s, not running" % (cid[:12], row.get("State")))
            # every image runs `true`, one of them (in turn) prints its
            # /.lineage instead; all at once (as users do, and it halves the time)
            ids = self.image_ids()
            if ids:
                cat = ids[self.lineage_turn % len(ids)]
                self.lineage_turn += 1
                argvs = [["run", "--rm", "--network", "none", iid] + (["cat", "/.lineage"] if iid == cat else ["true"])
                         for iid in ids]
                for iid, r in zip(ids, self.kiln.run_many(argvs)):
                    if r.rc != 0:
                        raise Failure("run", "image %s (%s) does not run\n%s" %
                                      (iid[:12], " ".join(sorted(self.state.images[iid])) or "<none>", r.describe()))
                    if iid == cat and r.out != self.lineage[iid]:
                        raise Failure("content", "image %s: /.lineage is not what the model expects %r\n%s" %
                                      (iid[:12], self.lineage[iid], r.describe()))
        finally:
            self.check_secs += time.monotonic() - t0

    # ------------------------------------------------------------ executing

    def execute(self, op):
        # drawn even with --no-kill, so that it replays the same operations
        kill_after = self.rng.uniform(0.005, 0.15) if self.rng.random() < KILL_PROBABILITY else None
        if not self.kill:
            kill_after = None
        before = self.state.copy()
        r = self.kiln.run(op.argv, kill_after=kill_after)
        r.image_id = None
        r.container_id = None
        self.stats[op.kind] += 1
        if r.killed:
            self.kills += 1
            self.stats["killed " + op.kind] += 1
            self.resync(op, before, r)
            return r
        ok = r.rc == 0
        if op.expect_ok is not None and ok != op.expect_ok:
            raise Failure("exit", "kiln %s: expected %s, got rc %d\n%s" %
                          (op.kind, "success" if op.expect_ok else "failure", r.rc, r.describe()))
        if r.rc not in (0, 1, 2, 125):
            raise Failure("exit", "kiln %s: exit status %d (crash?)\n%s" % (op.kind, r.rc, r.describe()))
        if not ok:
            if op.after_kill:
                op.after_kill(False)
            if op.kind == "pull":
                return r   # a pull of something absent: no change
            return r
        # learn what only kiln knows
        if op.creates is not None:
            iid = self.read_new_id(op, r)
            r.image_id = iid
            self.learn(iid, op.creates[1])
        if op.kind == "pull":
            iid = r.out.strip().splitlines()[-1].replace("sha256:", "") if r.out.strip() else ""
            if iid not in op.pull_cands:
                raise Failure("pull", "pull of %s gave image %s; pushed there: %s\n%s" %
                              (op.pull_ref, iid[:12], sorted(str(c)[:12] for c in op.pull_cands), r.describe()))
            self.registry[op.pull_ref] = {iid}
            r.image_id = iid
            self.learn(iid, None)
        if op.kind == "run -d":
            cid = r.out.strip().splitlines()[-1] if r.out.strip() else ""
            if len(cid) < 12:
                raise Failure("exit", "run -d printed no container ID\n" + r.describe())
            r.container_id = cid
            self.cserial[cid] = len(self.cserial)
        if r.image_id:
            op.note = " -> " + r.image_id[:12]
        if r.container_id:
            op.note = " -> container " + r.container_id[:12]
        if op.after_kill:
            op.after_kill(True)
        self.alternatives = []
        self.state = op.apply(self.state.copy(), r, self.alternatives)
        for iid in self.state.images:
            self.learn(iid, None)
        return r

    def read_new_id(self, op, r):
        if op.kind in ("build", "rebuild"):
            try:
                with open(op.iidfile) as f:
                    iid = f.read().strip()
            except OSError as e:
                raise Failure("exit", "build wrote no --iidfile: %s\n%s" % (e, r.describe()))
        else:
            iid = r.out.strip().splitlines()[-1] if r.out.strip() else ""
        iid = iid.replace("sha256:", "")
        if len(iid) != 64:
            raise Failure("exit", "%s printed no image ID\n%s" % (op.kind, r.describe()))
        return iid

    def resync(self, op, before, r):
        """After a killed op: every image and container it could touch is as
        before or as after it; take kiln's view of those."""
        seen = self.observe()
        r.image_id = None
        if op.creates is not None:
            name, lineage = op.creates
            if name:
                new = seen.holder(name)
                if new is not None and new != before.holder(name):
                    r.image_id = new
            else:
                new = sorted(set(seen.images) - set(before.images))
                if len(new) == 1:
                    r.image_id = new[0]
            if r.image_id:
                self.learn(r.image_id, lineage)
        if op.kind == "pull":
            new = seen.holder(op.pull_ref)
            if new is not None and new != before.holder(op.pull_ref):
                if new not in op.pull_cands:
                    raise Failure("pull", "killed pull of %s gave image %s; pushed there: %s" %
                                  (op.pull_ref, new[:12], sorted(str(c)[:12] for c in op.pull_cands)))
                r.image_id = new
        if op.kind == "run -d":
            new = sorted(set(seen.containers) - set(before.containers))
            if len(new) > 1:
                raise Failure("ps", "a killed run -d made %d containers" % len(new))
            if new:
                r.container_id = new[0]
                self.cserial[new[0]] = len(self.cserial)
                self.maybe_stopped.add(new[0])
        after = before.copy()
        alts = []
        if (op.creates is None or r.image_id) and (op.kind != "pull" or r.image_id) and \
                (op.kind != "run -d" or r.container_id):
            after = op.apply(before.copy(), r, alts)
        cands = [before, after] + [a for _, a in alts]
        bad = []
        for i in sorted(set().union(*(c.images for c in cands + [seen]))):
            if seen.images.get(i) not in [c.images.get(i) for c in cands]:
                bad.append("image %s" % i[:12])
        for k in sorted(set().union(*(c.containers for c in cands + [seen]))):
            if seen.containers.get(k) not in [c.containers.get(k) for c in cands]:
                bad.append("container %s" % k[:12])
        if set(seen.names()) not in [set(c.names()) for c in cands]:
            bad.append("names %s" % " ".join(sorted(seen.names())))
        for c in before.containers:
            if after.containers.get(c) != before.containers[c]:
                self.maybe_stopped.add(c)   # the kill may have come between stop and removal
        if bad:
            raise Failure("kill", "after kill -9 of `kiln %s`, kiln shows a state that is neither before nor after "
                          "it (%s):\nbefore:\n  %s\nafter:\n  %s\nkiln:\n  %s\n%s" %
                          (op.text(), ", ".join(bad), "\n  ".join(before.render()), "\n  ".join(after.render()),
                           "\n  ".join(seen.render()), r.describe()))
        if op.after_kill:
            op.after_kill(False)
        op.note = " KILLED: kiln shows the state %s" % (
            "before it" if seen == before else "after it" if seen == after else "partly after it")
        if r.image_id:
            op.note += " (-> %s)" % r.image_id[:12]
        self.state = seen
        for iid in self.state.images:
            self.learn(iid, None)
            if iid not in self.lineage:
                raise Failure("kill", "image %s appeared after a killed op, content unknown" % iid[:12])

    def run(self):
        self.cserial = {}
        self.maybe_stopped = set()
        t0 = time.monotonic()
        try:
            for n in range(self.nops):
                op = self.plan()
                self.ops_done.append(op)
                r = self.execute(op)
                if self.args.verbose:
                    print("# %s-%d %3d %s%s%s (%.2f s)" % (self.mode, self.seed, n + 1, op.text(), getattr(op, "text_extra", ""),
                                                     " KILLED" if r.killed else "", r.secs), flush=True)
                self.check()
            return None
        except Failure as f:
            return f
        finally:
            self.elapsed = time.monotonic() - t0

    def report(self, failure):
        lines = ["mode %s seed %d: check '%s' failed after operation %d of %d" %
                 (self.mode, self.seed, failure.check, len(self.ops_done), self.nops)]
        lines += ["", failure.message.rstrip(), "", "operations:"]
        for i, op in enumerate(self.ops_done):
            lines.append("  %3d kiln %s%s%s" % (i + 1, op.text(), getattr(op, "text_extra", ""), getattr(op, "note", "")))
        lines += ["", "model:"] + ["  " + l for l in self.state.render()]
        lines += ["", "kiln images before the last operation:"] + ["  " + l for l in getattr(self, "prev_entries", [])]
        lines += ["kiln images now:"] + ["  " + l for l in getattr(self, "entries", [])]
        lines += ["", "last commands:"]
        for r in self.kiln.log[-6:]:
            lines.append(r.describe().rstrip())
        lines += ["", "replay: %s --mode %s --seed %d --ops %d -v%s (store kept with --keep)" %
                  (os.path.relpath(__file__), self.mode, self.seed, len(self.ops_done),
                   "" if self.kill else " --no-kill")]
        return "\n".join(lines)

    def cleanup(self):
        try:
            for cid in list(self.state.containers) + list(getattr(self, "cserial", {})):
                self.kiln.run(["rm", "-f", cid])
            seen = self.observe()
            for cid in seen.containers:
                self.kiln.run(["rm", "-f", cid])
        except Exception:
            pass
        if self.args.keep:
            print("# kept %s" % self.work, flush=True)
            return
        if self.mode == "user" and os.getuid() != 0:
            self.kiln.run(["unshare", "rm", "-rf", self.store])
        shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------- fixed cases

def case_load_same_image(args, mode, reg, tars):
    """A docker-archive of a built image, loaded while the image is in the
    store: still one image (its layers are stored recompressed, which gave a
    second manifest of the same config, and `rmi ID` then removed one of the
    two). Found by the model (root, seed 3, operation 53)."""
    m = ModelRun(args, mode, 0, 0, reg, tars, False)
    k = m.kiln
    try:
        def ok(argv):
            r = k.run(argv)
            if r.rc != 0:
                raise Failure("exit", r.describe())
            return r
        ok(["import", "-q", tars[0][0], "m0"])
        ctx = os.path.join(m.work, "ctx")
        os.mkdir(ctx)
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM m0\nRUN echo built > /x\n")
        os.chmod(ctx, 0o755)
        os.chmod(os.path.join(ctx, "Containerfile"), 0o644)
        iid = ok(["build", "-q", "--pull", "never", "--network", "none", "-t", "m1", ctx]).out.split()[-1]
        iid = iid.replace("sha256:", "")
        archive = os.path.join(m.out_dir, "m1.tar")
        ok(["save", "-o", archive, "--format", "docker-archive", "m1"])
        ok(["tag", "m1", "m2"])
        ok(["load", "-q", "-i", archive])
        seen = m.observe()    # fails on an ID listed twice
        if seen.images.get(iid) != {"localhost/m1:latest", "localhost/m2:latest"}:
            raise Failure("images", "after load: %s" % seen.render())
        ok(["rmi", "-f", iid])
        seen = m.observe()
        if iid in seen.images:
            raise Failure("images", "rmi -f %s left it listed: %s" % (iid[:12], seen.render()))
        r = k.run(["prune", "--check"])
        if r.rc != 0:
            raise Failure("check", r.describe())
        return None
    except Failure as f:
        return f
    finally:
        m.cleanup()


# ---------------------------------------------------------------- setup

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_registry(d):
    """Debian's docker-registry on an ephemeral loopback port (as
    tests/integration/lib.sh start_registry)."""
    exe = shutil.which("docker-registry")
    if not exe:
        return None, None
    reg = "127.0.0.1:%d" % free_port()
    with open(os.path.join(d, "registry.yml"), "w") as f:
        f.write("version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
                "storage: {filesystem: {rootdirectory: %s/registry}}\nhttp: {addr: %s}\n" % (d, reg))
    log = open(os.path.join(d, "registry.log"), "w")
    p = subprocess.Popen([exe, "serve", os.path.join(d, "registry.yml")], stdout=log, stderr=log)
    for _ in range(100):
        try:
            urllib.request.urlopen("http://%s/v2/" % reg, timeout=1).read()
            return reg, p
        except Exception:
            time.sleep(0.1)
    p.kill()
    p.wait()
    return None, None


def make_busybox_tars(src_root, d):
    """The offline busybox rootfs, and two variants with a /.lineage file."""
    base = os.path.join(d, "busybox.tar")
    subprocess.run([os.path.join(src_root, "scripts", "make-busybox-rootfs.sh"), base], check=True,
                   stdout=subprocess.DEVNULL)
    tars = []
    for k in range(2):
        path = os.path.join(d, "busybox-%d.tar" % k)
        shutil.copy(base, path)
        lineage = "base%d\n" % k
        with tarfile.open(path, "a", format=tarfile.GNU_FORMAT) as t:
            info = tarfile.TarInfo(".lineage")
            data = lineage.encode()
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o644, 0, 0, 0
            t.addfile(info, io.BytesIO(data))
        os.chmod(path, 0o644)
        tars.append((path, lineage))
    return tars


def modes():
    if os.getuid() != 0:
        return ["user"]
    user = os.environ.get("KILN_TEST_USER", "")
    try:
        if user:
            pwd.getpwnam(user)
            return ["user", "root"]
    except KeyError:
        pass
    return ["root"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kiln", default=os.environ.get("KILN_BIN"))
    ap.add_argument("--mode", choices=["user", "root"], action="append",
                    help="run only this mode (repeatable; default: both as root, user otherwise)")
    ap.add_argument("--seed", type=int, action="append", help="run only this seed (repeatable)")
    ap.add_argument("--ops", type=int, help="operations per (mode, seed) run")
    ap.add_argument("--no-kill", action="store_true", help="never kill an operation")
    ap.add_argument("--keep", action="store_true", help="keep the store and work files")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every operation")
    ap.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("KILN_MODEL_JOBS", "2")),
                    help="runs at the same time (default 2)")
    args = ap.parse_args()
    if not args.kiln:
        ap.error("KILN_BIN or --kiln is needed")
    if not os.access(args.kiln, os.X_OK):
        print("Bail out! %s is not an executable" % args.kiln)
        return 1
    src_root = os.environ.get("KILN_SOURCE_ROOT") or \
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run_modes = args.mode or modes()
    seeds = args.seed or [int(s) for s in os.environ.get("KILN_MODEL_SEEDS", "1,2").split(",") if s]
    runs = [(m, s) for s in seeds for m in run_modes]
    if args.ops:
        per_run = args.ops
    else:
        total = int(os.environ.get("KILN_MODEL_OPS", "600"))
        per_run = max(1, total // len(runs))
    todo = set(c for c in os.environ.get("KILN_MODEL_TODO", "").split(",") if c)

    shared = tempfile.mkdtemp(prefix="kiln-model.")
    os.chmod(shared, 0o755)
    reg, reg_proc = start_registry(shared)
    n = 0
    failed = 0
    try:
        if not reg:
            print("1..1\nnot ok 1 - start docker-registry (Debian package docker-registry)")
            return 1
        tars = make_busybox_tars(src_root, shared)
        # runs go `jobs` at a time (each on its own store): most of a kiln
        # command's time is waiting, so two runs use two cores
        pending = [ModelRun(args, mode, seed, per_run, reg, tars, not args.no_kill) for mode, seed in runs]
        slots = threading.Semaphore(max(1, args.jobs))
        threads = []
        for m in pending:
            def go(m=m):
                with slots:
                    try:
                        m.failure = m.run()
                    except Exception as e:   # a bug of this script: report it, do not hang
                        m.failure = Failure("script", "%s: %s" % (type(e).__name__, e))
                    m.done.set()
            m.done = threading.Event()
            t = threading.Thread(target=go, daemon=True)
            t.start()
            threads.append(t)
        for m in pending:
            m.done.wait()
            n += 1
            f = m.failure
            summary = "store model %s seed %d: %d ops (%d killed) in %.1f s (checks %.1f s)" % (
                m.mode, m.seed, len(m.ops_done), m.kills, m.elapsed, m.check_secs)
            if f is None:
                print("ok %d - %s" % (n, summary), flush=True)
            else:
                if f.check in todo:
                    print("not ok %d - %s # TODO known bug, check '%s'" % (n, summary, f.check), flush=True)
                else:
                    print("not ok %d - %s" % (n, summary), flush=True)
                    failed += 1
                print("\n".join("# " + l for l in m.report(f).splitlines()), flush=True)
            print("# ops: " + ", ".join("%s %d" % kv for kv in sorted(m.stats.items())), flush=True)
            print("# seconds: " + ", ".join("%s %.1f" % kv for kv in m.kiln.cmd_secs.most_common()), flush=True)
            m.cleanup()
        for mode in run_modes:
            n += 1
            f = case_load_same_image(args, mode, reg, tars)
            desc = "load of a docker-archive of an image in the store keeps one image (%s)" % mode
            if f is None:
                print("ok %d - %s" % (n, desc), flush=True)
            else:
                failed += 1
                print("not ok %d - %s" % (n, desc), flush=True)
                print("\n".join("# " + l for l in f.message.splitlines()), flush=True)
        for key, (desc, reason) in sorted(KNOWN.items()):
            n += 1
            conformed = sum(m.conformed[key] for m in pending)
            diverged = sum(m.diverged[key] for m in pending)
            first = [m.diverged_at[key] for m in pending if key in m.diverged_at]
            if diverged:
                print("not ok %d - %s # TODO %s (%d of %d times; first: %s)" %
                      (n, desc, reason, diverged, diverged + conformed, first[0]), flush=True)
            elif conformed:
                print("ok %d - %s (%d times)" % (n, desc, conformed), flush=True)
            else:
                print("ok %d - %s # SKIP the case did not come up" % (n, desc), flush=True)
        print("1..%d" % n)
        return 1 if failed else 0
    finally:
        if reg_proc:
            reg_proc.kill()
            reg_proc.wait()
        shutil.rmtree(shared, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
