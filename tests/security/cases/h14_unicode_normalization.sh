#!/usr/bin/env bash
# H14 (names that differ only in Unicode normalization): a layer with
# `caf\u00e9` (NFC) and `cafe\u0301` (NFD) must give two files, as Docker and
# containerd do (names are bytes); otherwise the second silently replaces the
# first, and the extractor and the differ disagree about the layer.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
mkpy "$WORK/l.tar" <<'PY'
import sys, mkhostile as mk
open(sys.argv[1], "wb").write(mk.Tar().file("caf\u00e9", "nfc\n").file("cafe\u0301", "nfd\n").bytes())
PY
accepted oci "$WORK/l.tar"
in_image sh -c 'for f in /caf*; do cat "$f"; done'
if [ "$(sort "$WORK/out" | tr '\n' ' ')" != "nfc nfd " ]; then
  show >&2
  known_hole "libarchive normalizes PAX path names to NFC (archive_entry_pathname in the C locale), so \"cafe\\u0301\" overwrites \"caf\\u00e9\" (src/layer/unpack.cpp reads names with archive_entry_pathname)"
fi
prune_check
