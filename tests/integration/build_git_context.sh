#!/usr/bin/env bash
# Git repositories as build contexts and git submodules (issue [2.11],
# docs/build.md "Git build contexts", "ADD from git"): repositories served by
# `git daemon` on loopback and over file://, with a submodule that has a
# submodule of its own (relative URLs). ADD from git fetches the submodules
# recursively (no .git left unless --keep-git-dir); `kiln build REMOTE#REF:SUBDIR`
# builds the repository's Containerfile; `--build-context NAME=REMOTE#REF`
# serves COPY --from=NAME; a submodule of a remote elsewhere that points at a
# path on this machine is refused; a subdir out of the checkout and a missing
# repository fail clearly. As the test user and as root.
set -u
. "$(dirname "$0")/lib.sh"

require_tool git "Debian package git"
temp_workdir build-git-context
export SOURCE_DATE_EPOCH=1700000000
g() { git -c user.name=t -c user.email=t@t -c init.defaultBranch=main -c protocol.file.allow=always "$@"; }
srv="$work/srv"; mkdir -p "$srv"

# deep <- lib (submodule deep at ./deep) <- top (submodule lib at vendor/lib, app/Containerfile).
# .gitmodules name siblings by relative URL (../NAME.git), as hosted projects do.
{
  mkdir -p "$work/deep" && cd "$work/deep" && g init -q . && echo d >d && g add -A && g commit -qm d &&
    g clone -q --bare . "$srv/deep.git" &&
  mkdir -p "$work/lib" && cd "$work/lib" && g init -q . && echo l >l &&
    g submodule add -q "$srv/deep.git" deep && g config -f .gitmodules submodule.deep.url ../deep.git &&
    g add -A && g commit -qm l && g clone -q --bare . "$srv/lib.git" &&
  mkdir -p "$work/top/app" && cd "$work/top" && g init -q . && echo t >t &&
    printf 'FROM busybox\nCOPY . /ctx\nRUN ls -A /ctx | tr "\\n" " " >/ls\n' >app/Containerfile && echo a >app/a &&
    g submodule add -q "$srv/lib.git" vendor/lib && g config -f .gitmodules submodule.vendor/lib.url ../lib.git &&
    g add -A && g commit -qm top && g tag -a v1 -m v1 && g clone -q --bare . "$srv/top.git" &&
  # evil: a submodule whose URL is a path on the machine that serves it
  mkdir -p "$work/evil" && cd "$work/evil" && g init -q . && echo e >e &&
    g submodule add -q "$srv/lib.git" sub && g add -A && g commit -qm evil && g clone -q --bare . "$srv/evil.git"
} >"$work/git.log" 2>&1 || { tap_not_ok "make the repositories"; diag <"$work/git.log"; tap_done; exit; }
chmod -R a+rX "$srv"
start_git_daemon "$srv" top.git || { tap_not_ok "start git daemon"; diag <"$srv.daemon.log"; tap_done; exit; }
D=$GITD
want_tree=".gitmodules app/Containerfile app/a t vendor/lib/.gitmodules vendor/lib/deep/d vendor/lib/l"

for mode in $(test_modes); do
  git_mode_setup "$mode" "$srv" || { tap_not_ok "$mode: import busybox"; continue; }
  as_mode "$mode" mkdir -p "$w/n"
  tree() { runc "$1" sh -c "cd $2 && find . -type f | sed 's|^\./||' | sort | tr '\n' ' '"; }

  # Submodules of ADD from git, recursively, over git:// and file://.
  if build_add s1 "$D/top.git#v1 /src" && [ "$(tree s1 /src)" = "$want_tree " ] &&
     [ -z "$(runc s1 find /src -name .git)" ]; then
    tap_ok "$mode: ADD git://…/top.git#v1: the submodule and its submodule (relative URLs) fetched; no .git left"
  else
    tap_not_ok "$mode: ADD from git with submodules (git://)"; diag <"$w/out"; tree s1 /src | diag
  fi
  if build_add s2 "$F/top.git#main /src" && [ "$(runc s2 cat /src/vendor/lib/l /src/vendor/lib/deep/d | tr '\n' ' ')" = "l d " ] &&
     build_add s3 "--keep-git-dir $F/top.git#main /src" && [ "$(runc s3 sh -c 'test -d /src/.git && test -f /src/vendor/lib/.git && cat /src/t')" = t ]; then
    tap_ok "$mode: ADD file://…/top.git#main fetches the submodules; --keep-git-dir keeps the .git dir and the submodules' .git files"
  else
    tap_not_ok "$mode: ADD from git with submodules (file://)"; diag <"$w/out"
  fi
  if ! build_add s4 "$D/evil.git#main /src" && grep -q "Containerfile:2" "$w/out" && grep -q "transport .file. not allowed" "$w/out"; then
    tap_ok "$mode: a submodule of a git:// remote that names a path on this machine is refused (git's file transport)"
  else
    tap_not_ok "$mode: evil submodule was not refused"; diag <"$w/out"
  fi

  # Two repositories and a local file in one ADD (as BuildKit): each tree, and the file, in DEST/.
  as_mode "$mode" sh -c "echo loc >'$w/c/local.txt'"
  if build_add s5 "$D/lib.git#main $F/deep.git#main local.txt /m/" &&
     [ "$(runc s5 sh -c 'cd /m && find . -type f | sort | tr "\n" " "')" = "./.gitmodules ./d ./deep/d ./l ./local.txt " ]; then
    tap_ok "$mode: ADD git://…/lib.git file://…/deep.git local.txt /m/: both trees and the local file"
  else
    tap_not_ok "$mode: ADD of two repositories and a local file"; diag <"$w/out"; runc s5 find /m | diag
  fi

  # The repository as the main context: its Containerfile, SUBDIR as the context.
  if kiln_as "$mode" "$s" build -q -t ctx1 "$D/top.git#v1:app" >/dev/null 2>"$w/out" &&
     [ "$(runc ctx1 cat /ls)" = "Containerfile a " ] &&
     kiln_as "$mode" "$s" build -q -t ctx2 -f app/Containerfile "$F/top.git#main" >/dev/null 2>"$w/out" &&
     [ "$(runc ctx2 cat /ls)" = ".gitmodules app t vendor " ] && [ "$(runc ctx2 cat /ctx/vendor/lib/deep/d)" = d ]; then
    tap_ok "$mode: kiln build git://…/top.git#v1:app and file://…/top.git#main -f app/Containerfile (submodules in the context, no .git)"
  else
    tap_not_ok "$mode: git main context"; diag <"$w/out"
  fi
  # A named context: COPY --from and FROM.
  as_mode "$mode" sh -c "printf 'FROM busybox\nCOPY --from=src vendor/lib/l /l\nCOPY --from=src t /t\n' >'$w/n/Containerfile'"
  if kiln_as "$mode" "$s" build -q -t named --build-context "src=$D/top.git#main" "$w/n" >/dev/null 2>"$w/out" &&
     [ "$(runc named cat /l /t | tr '\n' ' ')" = "l t " ]; then
    tap_ok "$mode: --build-context src=git://…/top.git#main serves COPY --from=src"
  else
    tap_not_ok "$mode: git named context"; diag <"$w/out"
  fi
  # The same build again: every step from the cache (the checkout's content is the key).
  if kiln_as "$mode" "$s" build --progress plain -t named --build-context "src=$F/top.git#main" "$w/n" >"$w/out" 2>&1 &&
     [ "$(grep -c 'Using cache' "$w/out")" -ge 2 ]; then
    tap_ok "$mode: the same tree from file:// instead of git:// comes from the cache"
  else
    tap_not_ok "$mode: git named context cache"; diag <"$w/out"
  fi
  kiln_as "$mode" "$s" build -t bad "$F/top.git#main:../../.." >/dev/null 2>"$w/out"; rc=$?
  check_refused "$mode: a SUBDIR out of the checkout: exit 2 naming it" $rc "../../.. is not a directory of the repository" "$w/out"
  if ! kiln_as "$mode" "$s" build --build-context "x=$F/missing.git#main" "$w/n" >/dev/null 2>"$w/out" &&
     grep -q -- "--build-context x=$F/missing.git#main" "$w/out"; then
    tap_ok "$mode: a repository that does not exist fails naming the --build-context"
  else
    tap_not_ok "$mode: missing git context"; diag <"$w/out"
  fi
  if [ -z "$(find /var/tmp "${TMPDIR:-/tmp}" -maxdepth 1 -name 'kiln-git-context-*' -user "$(as_mode "$mode" id -u)" 2>/dev/null)" ]; then
    tap_ok "$mode: no checkout is left behind"
  else
    tap_not_ok "$mode: checkouts left in /var/tmp"
  fi
  rm -rf "$w" 2>/dev/null || as_mode "$mode" rm -rf "$w"
done

# Over SSH (as root: an sshd of the test's own on loopback, a key only in an
# ssh-agent): ADD from git uses the agent of --ssh default=SOCKET; a git
# context uses $SSH_AUTH_SOCK. The host key is unknown to root's known_hosts.
if [ "$(id -u)" -eq 0 ] && [ -x /usr/sbin/sshd ] && command -v ssh-agent >/dev/null; then
  d="$work/ssh"; mkdir -p "$d" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$d/host" && ssh-keygen -q -t ed25519 -N '' -f "$d/id" &&
    cp "$d/id.pub" "$d/authorized_keys"
  sport=$(free_port)
  cat >"$d/sshd_config" <<CFG
Port $sport
ListenAddress 127.0.0.1
HostKey $d/host
PidFile $d/sshd.pid
AuthorizedKeysFile $d/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers root
CFG
  /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>"$d/sshd.log" &
  SSHD_PID=$!
  eval "$(ssh-agent -a "$d/agent.sock" -s)" >/dev/null && ssh-add -q "$d/id" 2>/dev/null
  trap 'kill $SSHD_PID $SSH_AGENT_PID 2>/dev/null; cleanup_workdir' EXIT
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$sport) 2>/dev/null && break; sleep 0.1; done
  S="ssh://root@127.0.0.1:$sport$srv"
  w=$(make_workdir root); s="$w/store"; mode=root
  import_busybox root "$s" "$w" >/dev/null; mkdir -p "$w/c"
  printf 'FROM busybox\nADD %s/top.git#v1 /src\n' "$S" >"$w/c/Containerfile"
  if kiln_as root "$s" build -q -t viassh --ssh "default=$d/agent.sock" "$w/c" >/dev/null 2>"$w/out" &&
     [ "$(runc viassh cat /src/t /src/vendor/lib/l | tr '\n' ' ')" = "t l " ]; then
    tap_ok "root: ADD ssh://root@127.0.0.1:PORT/…/top.git#v1 with --ssh default=AGENT (an unknown host key accepted for the fetch only)"
  else
    tap_not_ok "root: ADD from git over ssh"; diag <"$w/out"; diag <"$d/sshd.log"
  fi
  if ! kiln_as root "$s" build -q --no-cache -t nossh "$w/c" >/dev/null 2>"$w/out" && grep -q "Containerfile:2.*Permission denied" "$w/out"; then
    tap_ok "root: the same ADD without --ssh fails (no agent, no key files: ADD never uses the user's ssh keys)"
  else
    tap_not_ok "root: ADD over ssh without --ssh"; diag <"$w/out"
  fi
  if SSH_AUTH_SOCK="$d/agent.sock" kiln_as root "$s" build -q -t sshctx "$S/top.git#main:app" >/dev/null 2>"$w/out" &&
     [ "$(runc sshctx cat /ls)" = "Containerfile a " ]; then
    tap_ok "root: kiln build ssh://…/top.git#main:app with \$SSH_AUTH_SOCK"
  else
    tap_not_ok "root: git context over ssh"; diag <"$w/out"
  fi
  rm -rf "$w"
fi
tap_done
