#!/bin/bash
# kiln generate quadlet (docs/kube.md "Quadlet"), through the real binary as
# the test user and as root (TAP): a .container using a .volume and a
# .network gives units that pass systemd-analyze verify, whose Exec lines,
# run by hand in their order, make the volume and network and start the
# container serving from the volume; ExecStop removes it; an unknown key is
# an error naming file:line and no unit is written for that file.
. "$(dirname "$0")/../integration/lib.sh"
temp_workdir quadlet

# exec_line UNIT KEY: the command of KEY= in UNIT, as a shell runs it
# (systemd's "-" prefix dropped, %% back to %).
exec_line() { sed -n "s/^$2=//p" "$1" | sed 's/%%/%/g'; }

for mode in $(test_modes); do
  begin_mode_here "$mode" || continue
  q=$w/quadlet out=$w/units
  mkdir -p "$q" "$out"
  hp=$(free_port)
  net=q$$${mode:0:1}
  cat >"$q/web.container" <<EOT
[Unit]
Description=busybox httpd from a Quadlet file

[Container]
Image=busybox
Volume=site.volume:/data
Network=$net.network
PublishPort=127.0.0.1:$hp:80
Environment=GREETING=hello
Exec=httpd -f -p 80 -h /data

[Service]
Restart=always

[Install]
WantedBy=default.target
EOT
  printf '[Volume]\n' >"$q/site.volume"
  printf '[Network]\nNetworkName=%s\n' "$net" >"$q/$net.network"
  printf 'not a quadlet file\n' >"$q/README"
  [ "$(id -u)" -eq 0 ] && [ "$mode" = user ] && chown -R "$KILN_TEST_USER" "$q" "$out"
  res=$(k generate quadlet -o "$out" "$q" 2>&1); rc=$?
  [ "$rc" = 0 ] && [ -f "$out/web.service" ] && [ -f "$out/site-volume.service" ] && [ -f "$out/$net-network.service" ] &&
    [ "$(ls "$out" | wc -l)" = 3 ] && tap_ok "$mode: generate quadlet -o writes web.service, site-volume.service, $net-network.service" ||
    tap_not_ok "$mode: generate quadlet: $rc $res"
  dry=$(k generate quadlet "$q" 2>&1)
  [ "$(awk '/^---web.service---$/{on=1;next} /^---/{on=0} on' <<<"$dry")" = "$(cat "$out/web.service")" ] &&
    tap_ok "$mode: without -o the unit is printed under ---web.service---" || tap_not_ok "$mode: dry run: $dry"
  if command -v systemd-analyze >/dev/null; then
    res=$(cd "$out" && systemd-analyze verify web.service site-volume.service "$net-network.service" 2>&1); rc=$?
    [ "$rc" = 0 ] && ! grep -q '\.service:' <<<"$res" && tap_ok "$mode: the three units pass systemd-analyze verify" ||
      tap_not_ok "$mode: verify: $res"
  else
    tap_skip "systemd-analyze is not installed"
  fi
  grep -qx 'Requires=site-volume.service' "$out/web.service" && grep -qx "After=$net-network.service" "$out/web.service" &&
    grep -qx 'Restart=always' "$out/web.service" && grep -qx 'WantedBy=default.target' "$out/web.service" &&
    tap_ok "$mode: web.service requires the volume and network units and keeps [Service]/[Install]" ||
    tap_not_ok "$mode: unit: $(cat "$out/web.service")"
  # Run the Exec lines by hand in systemd's order.
  ok=1
  for line in "$(exec_line "$out/site-volume.service" ExecStart)" "$(exec_line "$out/$net-network.service" ExecStart)" \
              "$(exec_line "$out/web.service" ExecStartPre)" "$(exec_line "$out/web.service" ExecStart)"; do
    # systemd's "-" prefix: a failure of that line is not an error.
    case $line in -*) as_mode "$mode" env XDG_RUNTIME_DIR= sh -c "${line#-}" >/dev/null 2>&1; continue;; esac
    res=$(as_mode "$mode" env XDG_RUNTIME_DIR= sh -c "$line" 2>&1) || { ok=0; tap_not_ok "$mode: $line: $res"; }
  done
  [ "$ok" = 1 ] && tap_ok "$mode: the units' Exec lines run by hand succeed"
  k exec systemd-web sh -c 'echo "$GREETING from quadlet" > /data/index.html' >/dev/null 2>&1
  got=$(fetch "$hp" /index.html)
  [ "$got" = "hello from quadlet" ] && tap_ok "$mode: container systemd-web serves on its published port" ||
    tap_not_ok "$mode: served '$got'"
  k network inspect "$net" >/dev/null 2>&1 && tap_ok "$mode: network $net exists" || tap_not_ok "$mode: no network $net"
  grep -qx "ExecStart=.* --network=$net .*" "$out/web.service" &&
    tap_ok "$mode: Network=$net.network uses the network's NetworkName=" || tap_not_ok "$mode: network name in ExecStart"
  res=$(as_mode "$mode" env XDG_RUNTIME_DIR= sh -c "$(exec_line "$out/web.service" ExecStop)" 2>&1)
  ! k container exists systemd-web 2>/dev/null && tap_ok "$mode: ExecStop removes the container" ||
    tap_not_ok "$mode: ExecStop: $res"
  got=$(k run --rm --network none -v systemd-site:/d busybox cat /d/index.html 2>&1)
  [ "$got" = "hello from quadlet" ] && tap_ok "$mode: what it served is in volume systemd-site, kept after ExecStop" ||
    tap_not_ok "$mode: volume systemd-site: '$got'"
  # An unknown key: the file's error names file:line and key; others still made.
  printf '[Container]\nImage=busybox\nFrobnicate=1\n' >"$q/bad.container"
  rm -f "$out"/*
  res=$(k generate quadlet -o "$out" "$q" 2>&1); rc=$?
  [ "$rc" = 1 ] && grep -q "bad.container:3: unsupported key 'Frobnicate' in group 'Container'" <<<"$res" &&
    [ ! -e "$out/bad.service" ] && [ -f "$out/web.service" ] &&
    tap_ok "$mode: an unknown key fails that file only, naming file:line and key (exit 1)" ||
    tap_not_ok "$mode: unknown key: $rc $res"
  res=$(k generate quadlet "$w/nosuch" 2>&1); rc=$?
  [ "$rc" = 2 ] && grep -q 'nosuch: no such file' <<<"$res" && tap_ok "$mode: a missing source is exit 2, named" ||
    tap_not_ok "$mode: missing source: $rc $res"
  k network rm -f "$net" >/dev/null 2>&1
done
tap_done
