#!/bin/sh
# Runs a test binary as the unprivileged $KILN_TEST_USER (rootless kiln).
# Exit 77 (skip) when there is no such user or we cannot switch to it.
if [ -z "${KILN_TEST_USER:-}" ]; then
  echo "KILN_TEST_USER is not set: skipping the rootless run"
  exit 77
fi
if [ "$(id -u)" != 0 ]; then
  [ "$(id -un)" = "$KILN_TEST_USER" ] || { echo "not root: cannot switch to $KILN_TEST_USER"; exit 77; }
  exec "$@"
fi
cd /tmp || exit 1
exec runuser -u "$KILN_TEST_USER" -- env TMPDIR=/tmp HOME=/tmp "$@"
