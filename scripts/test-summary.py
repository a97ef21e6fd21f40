#!/usr/bin/env python3
"""Counts test cases in meson's JUnit logs and prints the closing line
'N passed, N failed, N skipped' that CI reads. --note FILE: a line to print
just before it (the security suite's "hostile inputs: N/52 contained").
A failed TAP case's diagnostics (the '#' lines after its 'not ok') are
printed under its FAILED line, a few lines each, so that a CI log cut to its
tail still says why."""
import argparse
import os
import sys
import xml.etree.ElementTree as ET

ap = argparse.ArgumentParser()
ap.add_argument("--extra-pass", type=int, default=0)
ap.add_argument("--extra-fail", type=int, default=0)
ap.add_argument("--note", action="append", default=[])
ap.add_argument("logs", nargs="*")
args = ap.parse_args()

passed, failed, skipped = args.extra_pass, args.extra_fail, 0
DIAG_LINES = 8


def diagnostics(lines, name):
    """The '#' lines after the 'not ok' line of case NAME ('N - text')."""
    head = "not ok " + name
    for i, line in enumerate(lines):
        if line.startswith(head):
            got = []
            for follow in lines[i + 1:]:
                if follow.startswith(("ok ", "not ok ")):
                    break
                if follow.startswith("#"):
                    got.append(follow[:200])
            return got[:DIAG_LINES]
    return []


failures = []
for path in args.logs:
    if not os.path.exists(path):
        continue
    label = os.path.basename(os.path.dirname(os.path.dirname(path)))
    root = ET.parse(path).getroot()
    per = [0, 0, 0]
    for suite in root.iter("testsuite"):
        out = suite.find("system-out")
        lines = (out.text or "").splitlines() if out is not None else []
        for case in suite.iter("testcase"):
            kinds = {child.tag for child in case}
            if "failure" in kinds or "error" in kinds:
                per[1] += 1
                failures.append((f"{label}: {suite.get('name')}.{case.get('name')}",
                                 diagnostics(lines, case.get("name") or "")))
            elif "skipped" in kinds or case.get("status") == "notrun" or case.get("result") == "skipped":
                per[2] += 1
            else:
                per[0] += 1
    print(f"{label}: {per[0]} passed, {per[1]} failed, {per[2]} skipped", file=sys.stderr)
    passed += per[0]; failed += per[1]; skipped += per[2]
for f, diag in failures:
    print(f"FAILED {f}", file=sys.stderr)
    for line in diag:
        print(f"    {line}", file=sys.stderr)
for note in args.note:
    if os.path.exists(note):
        with open(note) as f:
            for line in f.read().splitlines():
                print(line)
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
