#!/usr/bin/env bash
# H43: an image whose /dev, /proc or /sys is a symlink (to the victim dir by
# its host path, or climbing out with ../), or whose /dev/null, /dev/console,
# /dev/pts, /dev/ptmx are symlinks to victim files: `kiln run` and a RUN step
# on it either refuse ("must be ... directory") or mount fresh /dev and /proc
# without resolving the links -- the victim is untouched and the container's
# /proc is procfs.
. "$KILN_SOURCE_ROOT/tests/security/common.sh" "$@"
make_victim
mkpy "$WORK" "$VICTIM" <<'PY'
import sys, mkhostile as mk
work, victim = sys.argv[1:]
w = lambda name, t: open("%s/%s.tar" % (work, name), "wb").write(t.bytes())
w("devabs", mk.Tar().symlink("dev", victim + "/dir"))
w("devrel", mk.Tar().symlink("dev", "../../../../victim/dir"))
w("procabs", mk.Tar().symlink("proc", victim + "/dir"))
w("sysrel", mk.Tar().symlink("sys", "../../../victim/dir"))
w("devnodes", mk.Tar().dir("dev").symlink("dev/null", victim + "/hello").symlink("dev/console", victim + "/hello")
  .symlink("dev/pts", victim + "/dir").symlink("dev/ptmx", victim + "/hello").symlink("dev/shm", victim + "/dir")
  .symlink("dev/tty", victim + "/hello").symlink("dev/zero", victim + "/hello"))
w("etcfiles", mk.Tar().dir("etc").symlink("etc/hosts", victim + "/hello").symlink("etc/resolv.conf", victim + "/hello")
  .symlink("etc/hostname", victim + "/hello"))
PY
probe='[ "$(stat -f -c %T /proc 2>/dev/null)" = proc ] && echo proc-ok; echo x >/dev/null && echo null-ok; ls /dev >/dev/null; echo end'
for name in devabs devrel procabs sysrel devnodes etcfiles; do
  deliver oci "$WORK/$name.tar"
  if [ -z "$STAGE" ]; then
    run_k run --rm --network none "$IMG" sh -c "$probe"
    case $RC in
      0) grep -q proc-ok "$WORK/out" && grep -q null-ok "$WORK/out" ||
           { show >&2; not_contained "$name: the container's /proc or /dev/null is not the real one"; } ;;
      1 | 125) grep -Eqi 'directory|symlink|link|dev|proc|sys' "$WORK/err" || { show >&2; not_contained "$name: refused without saying why"; } ;;
      *) show >&2; not_contained "$name: run exited $RC" ;;
    esac
    [ "$name" != etcfiles ] || run_k run --rm --hostname h43 "$IMG" true  # writes /etc/hostname and /etc/hosts
  else
    case $RC in 1 | 125) ;; *) show >&2; not_contained "$name: exit $RC" ;; esac
  fi
  check_victim
  # the same image as a build base
  case $name in devabs | devnodes | procabs) ;; *) k rmi -f "$IMG" >/dev/null 2>&1; continue ;; esac
  mkdir -p "$WORK/ctx-$name"
  printf 'FROM %s\nRUN echo x >/dev/null; cat /proc/self/status >/dev/null; echo hi >/etc/hosts-probe\n' "$IMG" >"$WORK/ctx-$name/Containerfile"
  own "$WORK/ctx-$name"
  run_k build -q "$WORK/ctx-$name"
  case $RC in 0 | 1 | 125) ;; *) show >&2; not_contained "$name: build exited $RC" ;; esac
  check_victim
  k rmi -f "$IMG" >/dev/null 2>&1
done
prune_check
