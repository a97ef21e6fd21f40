#!/usr/bin/env python3
"""Build output (docs/build.md "Output and progress"), TAP, through the real
kiln binary, as the unprivileged test user and as root (lib.sh's modes):

- on a pseudo-terminal (python pty) `kiln build` draws the live view: a
  "[+] Building" header redrawn with cursor movement at most ~10 times a
  second, rows with elapsed times, two parallel stages' steps and their last
  output lines at once, and a last frame "FINISHED" with every step collapsed;
  a failing step's whole output after an "ERROR" frame;
- `--progress=plain` (and $BUILDKIT_PROGRESS=plain on a terminal): the exact
  line shapes (STEP n/N without gaps, --> Using cache, COMMIT, Successfully
  tagged), compared with buildah 1.28's output of the same Containerfile when
  buildah is installed (root);
- `--progress=json`: every stderr line is a JSON object;
- stdout holds the image ID only, in every mode, and -q / --progress=quiet
  print nothing else.
"""
import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time

KILN = os.environ["KILN_BIN"]
SRC = os.environ.get("KILN_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
USER = os.environ.get("KILN_TEST_USER", "")
n = 0
failed = 0


def ok(cond, name, detail=""):
    global n, failed
    n += 1
    if cond:
        print(f"ok {n} - {name}")
    else:
        failed += 1
        print(f"not ok {n} - {name}")
        for line in str(detail).splitlines()[-40:]:
            print(f"# {line}")
    sys.stdout.flush()
    return cond


def modes():
    if os.getuid() != 0:
        return ["user"]
    if USER:
        try:
            subprocess.run(["id", USER], check=True, capture_output=True)
            return ["user", "root"]
        except subprocess.CalledProcessError:
            pass
    return ["root"]


def argv_as(mode, store, args, env=None):
    """The command line running kiln ARGS as MODE's user on STORE."""
    e = {"KILN_ROOT": store, "SOURCE_DATE_EPOCH": "1700000000", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    envs = [f"{k}={v}" for k, v in e.items()]
    if mode == "user" and os.getuid() == 0:
        home = subprocess.run(["getent", "passwd", USER], capture_output=True, text=True).stdout.split(":")[5]
        return ["runuser", "-u", USER, "--", "env", "-i", f"HOME={home}", "XDG_RUNTIME_DIR="] + envs + [KILN] + args
    return ["env", "-i", f"HOME={os.environ.get('HOME', '/root')}"] + envs + [KILN] + args


def run(mode, store, args, env=None):
    return subprocess.run(argv_as(mode, store, args, env), capture_output=True)


def run_pty(mode, store, args, env=None, cols=100, rows=40):
    """Runs kiln on a pseudo-terminal (stdin, stdout and stderr): (exit status,
    the bytes it wrote, [(seconds since start, chunk)])."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            argv = argv_as(mode, store, args, dict({"TERM": "xterm"}, **(env or {})))
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    start = time.monotonic()
    chunks = []
    while True:
        r, _, _ = select.select([fd], [], [], 120)
        if not r:
            os.kill(pid, 9)
            break
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child's side is closed
            break
        if not data:
            break
        chunks.append((time.monotonic() - start, data))
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(c for _, c in chunks), chunks


def frames(out):
    """The frames of a live view: the text from one "[+] Building" header to
    the next, escape sequences removed, lines without \\r."""
    text = out.decode("utf-8", "replace").replace("\r", "")
    parts = text.split("[+] Building")[1:]
    return ["[+] Building" + re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", p) for p in parts]


ROW = re.compile(r"^ => (CACHED |ERROR )?\[[^\]]+ \d+/\d+\] .* \d+\.\ds$")
HEX11 = r"[0-9a-f]{11}"


def check_live(mode, store, work):
    ctx = os.path.join(work, "par")
    st, out, chunks = run_pty(mode, store, ["build", "--no-cache", "-t", "live", ctx])
    fr = frames(out)
    ok(st == 0, f"{mode}: kiln build on a terminal exits 0", out.decode("utf-8", "replace")[-3000:])
    ok(b"\x1b[" in out and re.search(rb"\x1b\[\d+F", out) is not None and len(fr) >= 5,
       f"{mode}: the live view redraws in place ({len(fr)} frames, cursor movement)", out[-2000:])
    both = [f for f in fr if re.search(r"=> \[a 2/2\] RUN .* \d+\.\ds\n => => # a-line-\d+", f)
            and re.search(r"=> \[b 2/2\] RUN .* \d+\.\ds\n => => # b-line-\d+", f)]
    ok(both, f"{mode}: both parallel stages' RUN rows, with elapsed times and their last lines, in one frame",
       "\n".join(fr[-3:]))
    if both:
        tails = [l for l in both[-1].splitlines() if l.startswith(" => => # a-line")]
        ok(0 < len(tails) <= 6, f"{mode}: a running step shows its last lines only ({len(tails)} of up to 10)",
           both[-1])
    dur = chunks[-1][0] if chunks else 0
    live = [f for f in fr if "FINISHED" not in f]
    ok(dur > 0 and len(live) <= 12 * dur + 3, f"{mode}: at most ~10 frames a second ({len(live)} in {dur:.1f} s)")
    last = fr[-1] if fr else ""
    lines = last.splitlines()
    ok(re.match(r"^\[\+\] Building \d+\.\ds \(9/9\) FINISHED$", lines[0] if lines else ""),
       f"{mode}: the last frame is the summary: '[+] Building N.Ns (9/9) FINISHED'", last)
    steps = [l for l in lines if ROW.match(l)]
    ok(len(steps) == 9 and not any("=> => #" in l for l in lines),
       f"{mode}: the summary lists every step with its time, output collapsed ({len(steps)} rows)", last)
    ok(any(re.match(r"^ => COMMIT live +\d+\.\ds$", l) for l in lines)
       and " => => naming to localhost/live:latest" in lines,
       f"{mode}: the summary ends with COMMIT and the name", last)
    ok(re.search(r"FINISHED.*\nsha256:[0-9a-f]{64}\n?$", last, re.S) is not None,
       f"{mode}: the image ID follows the last frame", last[-500:])

    # A failing step: the ERROR frame, then its whole output.
    st, out, _ = run_pty(mode, store, ["build", "-f", os.path.join(work, "fail", "Containerfile"),
                                       os.path.join(work, "fail")])
    text = out.decode("utf-8", "replace").replace("\r", "")
    fr = frames(out)
    last = fr[-1] if fr else ""
    ok(st == 1 and re.search(r"\(\d+/\d+\) ERROR\n", last) and re.search(r" => ERROR \[stage-0 2/2\] RUN ", last),
       f"{mode}: a failing step: exit 1, an ERROR frame naming it", text[-2000:])
    report = last.split("------\n")
    full = all(f"fail-line-{i}\n" in last for i in range(1, 21))
    ok(len(report) >= 3 and full and "kiln: error: RUN " in last,
       f"{mode}: the failed step's whole output (20 lines) between ------ lines, then the error", last[-2500:])

    # $BUILDKIT_PROGRESS=plain on a terminal: plain lines, no escapes.
    st, out, _ = run_pty(mode, store, ["build", "-t", "live", ctx], env={"BUILDKIT_PROGRESS": "plain"})
    ok(st == 0 and b"\x1b" not in out and b"[1/3] STEP 1/2: FROM busybox AS a" in out,
       f"{mode}: BUILDKIT_PROGRESS=plain gives plain lines on a terminal", out[-1500:])
    st, out, _ = run_pty(mode, store, ["build", "--progress=plain", "-t", "live", ctx],
                         env={"BUILDKIT_PROGRESS": "tty"})
    ok(st == 0 and b"\x1b" not in out, f"{mode}: --progress=plain wins over BUILDKIT_PROGRESS", out[-1500:])


def plain_shape(err):
    """Plain output with IDs replaced by <id> (11 hex) and <key> (64 hex), without
    kiln's warnings (no network helper as the test user...)."""
    t = "".join(l for l in err.splitlines(True) if not l.startswith("kiln: warning: "))
    t = re.sub(r"\b[0-9a-f]{64}\b", "<key>", t)
    t = re.sub(r"\b[0-9a-f]{11}\b", "<id>", t)
    return t


# Steps 5 and 6 (never cached: ARG and CMD change no file) and the commit.
PLAIN_TAIL = """STEP 5/6: ARG X=1
--> <id>
STEP 6/6: CMD ["sh"]
COMMIT plain
--> <id>
Successfully tagged localhost/plain:latest
"""

PLAIN_WANT = """STEP 1/6: FROM localhost/busybox
STEP 2/6: RUN echo hello
hello
--> <id>
STEP 3/6: ENV A=1
--> <id>
STEP 4/6: COPY f.txt /f.txt
--> <id>
""" + PLAIN_TAIL

PLAIN_CACHED = """STEP 1/6: FROM localhost/busybox
STEP 2/6: RUN echo hello
--> Using cache <key>
--> <id>
STEP 3/6: ENV A=1
--> <id>
STEP 4/6: COPY f.txt /f.txt
--> Using cache <key>
--> <id>
""" + PLAIN_TAIL


def check_plain(mode, store, work):
    ctx = os.path.join(work, "plain")
    idre = re.compile(rb"^sha256:[0-9a-f]{64}\n$")
    for label, args, want in (("first build", ["--no-cache"], PLAIN_WANT), ("cached rebuild", [], PLAIN_CACHED)):
        r = run(mode, store, ["build", "--progress=plain", "-t", "plain"] + args + [ctx])
        err = r.stderr.decode("utf-8", "replace")
        ok(r.returncode == 0 and plain_shape(err) == want and idre.match(r.stdout),
           f"{mode}: --progress=plain {label}: the exact lines, the ID alone on stdout",
           f"got:\n{plain_shape(err)}\nwant:\n{want}\nstdout: {r.stdout!r}")
    # Not a terminal: plain is the default.
    r = run(mode, store, ["build", "-t", "plain", ctx])
    ok(r.returncode == 0 and plain_shape(r.stderr.decode()) == PLAIN_CACHED and b"\x1b" not in r.stderr,
       f"{mode}: without --progress, not on a terminal: plain", r.stderr)
    for q in (["-q"], ["--progress=quiet"]):
        r = run(mode, store, ["build"] + q + ["-t", "plain", ctx])
        ok(r.returncode == 0 and r.stderr == b"" and idre.match(r.stdout), f"{mode}: {q[0]}: the ID only",
           f"{r.stdout!r} {r.stderr!r}")
    # The multi-stage build: [i/N] before STEP and COMMIT; the two parallel
    # stages' output and --> lines carry their stage's name.
    r = run(mode, store, ["build", "--no-cache", "--progress=plain", "-t", "live", os.path.join(work, "par")])
    lines = r.stderr.decode("utf-8", "replace").splitlines()
    steps = [l for l in lines if " STEP " in l]
    want_steps = ["[1/3] STEP 1/2: FROM busybox AS a", "[1/3] STEP 2/2: RUN",
                  "[2/3] STEP 1/2: FROM busybox AS b", "[2/3] STEP 2/2: RUN",
                  "[3/3] STEP 1/5: FROM busybox", "[3/3] STEP 2/5: COPY --from=a", "[3/3] STEP 3/5: COPY --from=b",
                  "[3/3] STEP 4/5: ENV X=1", "[3/3] STEP 5/5: CMD"]
    ok(r.returncode == 0 and len(steps) == 9 and all(any(s.startswith(w) for s in steps) for w in want_steps) and "[3/3] COMMIT live" in lines and "Successfully tagged localhost/live:latest" in lines,
       f"{mode}: multi-stage plain: [i/N] STEP lines numbered without gaps, COMMIT, Successfully tagged",
       "\n".join(lines))
    a_out = [l for l in lines if "a-line-" in l and " STEP " not in l]
    b_out = [l for l in lines if "b-line-" in l and " STEP " not in l]
    ok(len(a_out) == 10 and len(b_out) == 6 and all(l.startswith("[a] a-line-") for l in a_out)
       and all(l.startswith("[b] b-line-") for l in b_out)
       and any(re.match(rf"^\[a\] --> {HEX11}$", l) for l in lines),
       f"{mode}: parallel stages' output lines carry the stage's name", "\n".join(lines))
    # json: every line is an object.
    r = run(mode, store, ["build", "--no-cache", "--progress=json", "-t", "live", os.path.join(work, "par")])
    events, bad = [], []
    for l in r.stderr.decode("utf-8", "replace").splitlines():
        try:
            events.append(json.loads(l))
        except ValueError:
            bad.append(l)
    statuses = {e.get("status") for e in events}
    okjson = (r.returncode == 0 and not bad and {"start", "output", "done", "config", "commit", "committed",
                                                 "tagged"} <= statuses
              and all(isinstance(e.get("elapsed"), (int, float)) for e in events)
              and all(isinstance(e.get("step"), int) and "stage" in e for e in events if e["status"] in
                      ("start", "output", "done", "cached", "config"))
              and idre.match(r.stdout))
    ok(okjson, f"{mode}: --progress=json: {len(events)} lines, each a JSON event with status and elapsed",
       "\n".join(bad[:5]) + "\n" + str(sorted(statuses)))


def check_buildah(work, tar):
    """The same Containerfile through buildah 1.28: the same lines (IDs aside)."""
    if os.getuid() != 0 or shutil.which("buildah") is None or not os.path.isdir(os.path.join(work, "plain")):
        return ok(True, "compare with buildah # SKIP buildah not installed or not root")
    b = ["buildah", "--root", os.path.join(work, "bstore"), "--runroot", os.path.join(work, "brun"),
         "--storage-driver", "vfs"]
    try:
        ctr = subprocess.run(b + ["from", "scratch"], check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(b + ["add", ctr, tar, "/"], check=True, capture_output=True)
        subprocess.run(b + ["commit", "-q", ctr, "localhost/busybox"], check=True, capture_output=True)
        outs = []
        for extra in (["--no-cache"], []):
            r = subprocess.run(b + ["bud", "--isolation", "chroot", "--layers"] + extra +
                               ["-t", "plain", os.path.join(work, "plain")], capture_output=True, text=True)
            outs.append(plain_shape(r.stdout + r.stderr))
    except (subprocess.CalledProcessError, OSError) as e:
        return ok(True, f"compare with buildah # SKIP buildah failed: {e}")
    # buildah prints the ID on stdout after its lines; kiln's ID is on stdout alone.
    got = [re.sub(r"\n<key>\n$", "\n", o) for o in outs]
    # buildah's cached rebuild says "Using cache" for config steps too (they are intermediate images).
    want_cached = re.sub(r"(STEP \d/6: (ENV|ARG) .*\n)--> <id>\n", r"\1--> Using cache <key>\n--> <id>\n",
                         PLAIN_CACHED)
    want_cached = want_cached.replace('STEP 6/6: CMD ["sh"]\n', 'STEP 6/6: CMD ["sh"]\n--> Using cache <key>\n')
    ok(got[0] == PLAIN_WANT and got[1] == want_cached,
       "buildah 1.28 prints the same lines as kiln's --progress=plain (IDs aside; buildah caches config steps)",
       f"buildah:\n{got[0]}\n{got[1]}")


def setup(mode, work, tar):
    store = os.path.join(work, "store")
    if mode == "user" and os.getuid() == 0:
        subprocess.run(["chown", USER, work], check=True)
    r = run(mode, store, ["import", tar, "busybox"])
    if r.returncode != 0:
        return None, r.stderr
    os.makedirs(os.path.join(work, "par"))
    with open(os.path.join(work, "par", "Containerfile"), "w") as f:
        f.write("FROM busybox AS a\n"
                "RUN for i in 1 2 3 4 5 6 7 8 9 10; do echo a-line-$i; sleep 0.2; done\n"
                "FROM busybox AS b\n"
                "RUN for i in 1 2 3 4 5 6; do echo b-line-$i; sleep 0.3; done\n"
                "FROM busybox\n"
                "COPY --from=a /etc/passwd /a\n"
                "COPY --from=b /etc/passwd /b\n"
                "ENV X=1\n"
                "CMD [\"sh\"]\n")
    os.makedirs(os.path.join(work, "fail"))
    with open(os.path.join(work, "fail", "Containerfile"), "w") as f:
        f.write("FROM busybox\nRUN for i in $(seq 1 20); do echo fail-line-$i; done; sleep 0.3; exit 3\n")
    os.makedirs(os.path.join(work, "plain"))
    with open(os.path.join(work, "plain", "Containerfile"), "w") as f:
        f.write("FROM localhost/busybox\nRUN echo hello\nENV A=1\nCOPY f.txt /f.txt\nARG X=1\nCMD [\"sh\"]\n")
    with open(os.path.join(work, "plain", "f.txt"), "w") as f:
        f.write("f\n")
    if mode == "user" and os.getuid() == 0:
        subprocess.run(["chown", "-R", USER, work], check=True)
    return store, None


def main():
    top = tempfile.mkdtemp(prefix="kiln-out.")
    os.chmod(top, 0o755)
    tar = os.path.join(top, "busybox.tar")
    subprocess.run([os.path.join(SRC, "scripts", "make-busybox-rootfs.sh"), tar], check=True,
                   stdout=subprocess.DEVNULL)
    os.chmod(tar, 0o644)
    try:
        for mode in modes():
            work = os.path.join(top, mode)
            os.makedirs(work)
            os.chmod(work, 0o755)
            store, err = setup(mode, work, tar)
            if not ok(store is not None, f"{mode}: import busybox", err):
                continue
            check_plain(mode, store, work)
            check_live(mode, store, work)
        check_buildah(os.path.join(top, "root"), tar)
    finally:
        if not os.environ.get("KILN_KEEP"):
            subprocess.run(["rm", "-rf", top])
    print(f"1..{n}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
