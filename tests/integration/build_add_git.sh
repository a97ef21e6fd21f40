#!/usr/bin/env bash
# ADD from a git repository (issue [2.11], docs/build.md "ADD from git"),
# with Debian's git: a repository served by `git daemon` on loopback and over
# file://; a tag, a branch, a commit no ref names, a subdir, --keep-git-dir,
# --checksum, the cache key (the resolved commit: a moved branch misses), and
# a hostile repository (a symlink to a host file stays a link; a subdir that
# is a symlink out of the checkout stays inside it). As the test user and as root.
set -u
. "$(dirname "$0")/lib.sh"

require_tool git "Debian package git"
temp_workdir build-add-git
export SOURCE_DATE_EPOCH=1700000000
g() { git -c user.name=t -c user.email=t@t -c init.defaultBranch=main "$@"; }

# The repository: v1 (annotated tag) -> c2 (main), a branch "feature".
src="$work/src"; mkdir -p "$src/sub"
(
  cd "$src" && g init -q . &&
  echo 1 >a && echo b >sub/b && ln -s /etc/shadow link && ln -s ../../../.. escape &&
  g add -A && g commit -qm one && g tag -a v1 -m v1 &&
  echo 2 >a && g commit -qam two &&
  g checkout -qb feature && echo feat >a && g commit -qam feat && g checkout -q main
) >"$work/git.log" 2>&1 || { tap_not_ok "make the repository"; diag <"$work/git.log"; tap_done; exit; }
c1=$(git -C "$src" rev-parse v1^{commit}); c2=$(git -C "$src" rev-parse main)
mkdir -p "$work/srv" && git clone -q --bare "$src" "$work/srv/repo.git" && chmod -R a+rX "$work/srv"
start_git_daemon "$work/srv" repo.git || { tap_not_ok "start git daemon"; diag <"$work/srv.daemon.log"; tap_done; exit; }
D="$GITD/repo.git"

for mode in $(test_modes); do
  git_mode_setup "$mode" "$work/srv" || { tap_not_ok "$mode: import busybox"; continue; }
  F="$F/repo.git"

  if build_add t1 "$F#v1 /src" && [ "$(runc t1 sh -c 'cat /src/a /src/sub/b; readlink /src/link; ls -A /src | tr "\n" " "')" = "$(printf '1\nb\n/etc/shadow\na escape link sub ')" ]; then
    tap_ok "$mode: ADD file://…#v1 (annotated tag): its tree, no .git, the symlink to /etc/shadow stays a link"
  else
    tap_not_ok "$mode: ADD file:// tag"; diag <"$w/out"; runc t1 ls -la /src | diag
  fi
  if build_add t2 "$D#main /src" && [ "$(runc t2 cat /src/a)" = 2 ] &&
     build_add t3 "$D#feature /src" && [ "$(runc t3 cat /src/a)" = feat ]; then
    tap_ok "$mode: ADD git://127.0.0.1 (git daemon) #main and #feature: each branch's tree"
  else
    tap_not_ok "$mode: ADD git:// branch"; diag <"$w/out"
  fi
  if build_add t4 "$D#$c1 /src" && [ "$(runc t4 cat /src/a)" = 1 ]; then
    tap_ok "$mode: ADD git://…#<commit> of a commit no ref has at its tip"
  else
    tap_not_ok "$mode: ADD git:// commit"; diag <"$w/out"
  fi
  if build_add t5 "$D#v1:sub /s" && [ "$(runc t5 sh -c 'ls -A /s')" = b ] &&
     build_add t6 "$F#main:escape /e" && [ "$(runc t6 sh -c 'ls -A /e | tr "\n" " "')" = "a escape link sub " ]; then
    tap_ok "$mode: #REF:SUBDIR copies that directory; a SUBDIR that is a link out of the checkout stays inside it"
  else
    tap_not_ok "$mode: ADD git subdir"; diag <"$w/out"; runc t6 ls -la /e | diag
  fi
  if build_add t7 "--keep-git-dir $F#main /src" && [ "$(runc t7 sh -c 'test -d /src/.git && cat /src/a')" = 2 ]; then
    tap_ok "$mode: --keep-git-dir keeps .git"
  else
    tap_not_ok "$mode: --keep-git-dir"; diag <"$w/out"
  fi
  if build_add t8 "--checksum=$c2 $D#main /src" && ! build_add t9 "--checksum=$c1 $D#main /src" &&
     grep -q "Containerfile:2" "$w/out" && grep -q "$c2" "$w/out"; then
    tap_ok "$mode: --checksum=<commit> passes for that commit and fails naming the real one otherwise"
  else
    tap_not_ok "$mode: ADD git --checksum"; diag <"$w/out"
  fi
  # Cache: the key is the commit. Same commit: cached; the branch moved: runs again.
  build_add t2 "$D#main /src"
  if grep -q "Using cache" "$w/out"; then
    tap_ok "$mode: a rebuild of the same commit comes from the cache"
  else
    tap_not_ok "$mode: git source cache hit"; diag <"$w/out"
  fi
  rm -rf "$w"
done

# The branch moves: the next build sees the new commit (once, as root or user).
( cd "$src" && echo 3 >a && g commit -qam three && git push -q "$work/srv/repo.git" main ) >>"$work/git.log" 2>&1
mode=$(test_modes | awk '{print $1}'); w=$(make_workdir "$mode"); s="$w/store"
import_busybox "$mode" "$s" "$w" >/dev/null
as_mode "$mode" mkdir -p "$w/c"
as_mode "$mode" sh -c "printf 'FROM busybox\nADD $D#main /src\nRUN cat /src/a\n' >'$w/c/Containerfile'"
kiln_as "$mode" "$s" build -q "$w/c" >/dev/null 2>&1
( cd "$src" && echo 4 >a && g commit -qam four && git push -q "$work/srv/repo.git" main ) >>"$work/git.log" 2>&1
if kiln_as "$mode" "$s" build --progress plain "$w/c" >"$w/out" 2>&1 && grep -q "^4$" "$w/out"; then
  tap_ok "$mode: a branch that moved to a new commit misses the cache"
else
  tap_not_ok "$mode: moved branch misses"; diag <"$w/out"
fi
rm -rf "$w"
tap_done
