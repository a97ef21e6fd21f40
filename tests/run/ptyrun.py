#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal, as a user at a terminal would.

  ptyrun.py [--type TEXT | --steps STEP... --] OUTFILE TIMEOUT CMD [ARG...]

Everything the command writes to the terminal goes to OUTFILE (raw bytes).
--type: TEXT is typed on the terminal once the command has printed something
(a prompt) or after 3 seconds.
--steps: each STEP is a number (seconds to wait) or text typed at once
(Python escapes: \\r, \\x10), in order from the start.
Exits with the command's status (128+N for a signal), 124 on timeout.
"""
import os
import pty
import select
import signal
import sys
import time


def main():
    args = sys.argv[1:]
    typed = None
    steps = []
    if args[0] == "--type":
        typed = args[1].encode()
        args = args[2:]
    elif args[0] == "--steps":
        end = args.index("--")
        steps = args[1:end]
        args = args[end + 1:]
    out_path, timeout, argv = args[0], float(args[1]), args[2:]
    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    next_step = start
    timed_out = False
    while True:
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
            break
        if typed is not None and (out or now - start > 3):
            os.write(fd, typed)
            typed = None
        while steps and now >= next_step:
            step = steps.pop(0)
            try:
                next_step = now + float(step)
            except ValueError:
                os.write(fd, step.encode().decode("unicode_escape").encode("latin-1"))
        r, _, _ = select.select([fd], [], [], min(left, 0.1 if steps else 0.5))
        if fd in r:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: every slave is closed
                break
            if not data:
                break
            out += data
    _, st = os.waitpid(pid, 0)
    with open(out_path, "wb") as f:
        f.write(out)
    if timed_out:
        sys.exit(124)
    sys.exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))


if __name__ == "__main__":
    main()
