#!/usr/bin/env bash
# Installs mailguard on this PC as the Debian package `mailguard` and starts guarding it:
#   sudo ./install/setup.sh             install the build packages, build, make the package
#                                       (cpack), install it with apt, start guardd, check it
#   sudo ./install/setup.sh --check     only check: does guardd enforce here, and does it
#                                       answer on the system bus?
#   sudo ./install/setup.sh --restart   restart guardd the way this machine runs it (in a
#                                       namespace trial: right there), then check
#   sudo ./install/setup.sh --uninstall stop what setup started, `apt purge mailguard`
# With systemd as PID 1 the package's scripts enable and start guardd.service. Without it
# (a container), and inside a network namespace trial (`ip netns exec try ...`, where
# systemd would start the service in the host's namespace), setup.sh starts the system bus
# if needed and runs guardd in the background, logging to /var/log/mailguard/guardd.log.
set -euo pipefail
src="$(dirname "$(readlink -f "$0")")/.."
cd "$src"

# Where the package puts things (packaging/package.cmake).
sbin=/usr/sbin
conf_dir=/etc/mailguard
state_dir=/var/lib/mailguard
log_dir=/var/log/mailguard
run_dir=/run/mailguard
pidfile=$run_dir/guardd.pid
build=build/install

say() { printf 'mailguard: %s\n' "$*"; }
die() { printf 'mailguard: %s\n' "$*" >&2; exit 1; }

# In a network namespace of its own, guardd must run right here: systemd would start the
# service in the host's namespace. `ip netns identify` names a namespace made with `ip
# netns add`; a different /proc/self/ns/net from PID 1's catches `unshare -n` too.
in_private_netns() {
  if [[ -n $(ip netns identify $$ 2>/dev/null) ]]; then return 0; fi
  local mine init
  mine=$(readlink /proc/self/ns/net)
  init=$(readlink /proc/1/ns/net 2>/dev/null) || return 0
  [[ $mine != "$init" ]]
}
# systemd is PID 1 (sd_booted(3)'s test) and we share its network namespace.
has_systemd() { [[ -d /run/systemd/system ]] && ! in_private_netns; }

# How to (re)start guardd on this machine, for the messages below.
restart_hint() {
  if has_systemd; then
    echo "sudo systemctl restart guardd"
  elif in_private_netns; then
    echo "inside this namespace: sudo ./install/setup.sh --restart, or by hand: sudo guardd &"
  else
    echo "sudo ./install/setup.sh --restart, or by hand: sudo guardd &"
  fi
}

# Stops a process setup.sh started and recorded in `file`, if it is still that program.
stop_recorded() {
  local file=$1 name=$2 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
  fi
  rm -f "$file"
}
stop_background_guardd() { stop_recorded "$pidfile" guardd; }

# --- The system bus --------------------------------------------------------------------
# Its socket: DBUS_SYSTEM_BUS_ADDRESS (unix:path=...) where set, else the standard one.
bus_socket() {
  local address=${DBUS_SYSTEM_BUS_ADDRESS:-unix:path=/run/dbus/system_bus_socket}
  address=${address#unix:path=}
  echo "${address%%,*}"
}
# A bus answers when its daemon replies to a call: a socket file alone proves nothing (one
# left behind by a bus that died, or a container restarted with /run kept, refuses
# connections, and guardd would never be reachable).
bus_answers() {
  dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetId >/dev/null 2>&1
}
bus_problem() {
  local sock
  sock=$(bus_socket)
  if [[ ! -e $sock ]]; then
    echo "there is no system bus ($sock does not exist)."
    if has_systemd; then echo "Start it: sudo systemctl start dbus"
    else echo "Start it: sudo dbus-daemon --system --fork"; fi
  else
    echo "$sock is stale: the socket file is there but no bus answers behind it (a bus that died, or /run kept over a restart)."
    if has_systemd; then echo "Restart the bus: sudo systemctl restart dbus"
    else echo "Remove it and start the bus: sudo rm -f $sock /run/dbus/pid && sudo dbus-daemon --system --fork"; fi
  fi
  echo "Then restart guardd so that it registers on the new bus: $(restart_hint)"
}
# Without systemd setup.sh looks after the bus itself: it starts one where none answers,
# first removing a stale socket and pid file of a bus that is gone (never a live one's).
ensure_system_bus() {
  bus_answers && return 0
  [[ -z ${DBUS_SYSTEM_BUS_ADDRESS:-} ]] || return 0  # another bus: not ours to start
  command -v dbus-daemon >/dev/null || return 0
  local sock=/run/dbus/system_bus_socket pid
  if [[ -e $sock || -e /run/dbus/pid ]]; then
    pid=$(cat /run/dbus/pid 2>/dev/null || true)
    if [[ -n $pid && $(cat "/proc/$pid/comm" 2>/dev/null) == dbus-daemon ]]; then
      return 0  # a live bus that does not answer (yet): not ours to replace
    fi
    say "removing the stale system bus socket $sock (no bus answers behind it)"
    rm -f "$sock" /run/dbus/pid
  fi
  mkdir -p /run/dbus
  if dbus-daemon --system --fork --print-pid >"$run_dir/dbus.pid"; then
    say "started the system bus (dbus-daemon, pid $(cat "$run_dir/dbus.pid"))"
  else
    rm -f "$run_dir/dbus.pid"
    say "could not start the system bus; guardd enforces without it"
  fi
}

# --- Is it guarding? -------------------------------------------------------------------
# "guarding" is said only when both hold: guardd's table is in this network namespace (it
# enforces), and guardd answers on the system bus (programs can be approved). guardd
# connects to the bus in the background, so both are polled up to a deadline.
check_guarding() {
  local seconds=${MAILGUARD_CHECK_SECONDS:-20} out
  local deadline=$((SECONDS + seconds))
  until nft list table inet mailguard >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      say "NOT guarding: guardd's table 'inet mailguard' is not in this network namespace (guardd does not enforce). Start it: $(restart_hint)"
      return 1
    fi
    sleep 0.2
  done
  if ! bus_answers; then
    say "NOT reachable: guardd enforces (mail of unapproved programs is held), but the system bus does not answer, so nothing can approve a program:"
    bus_problem | while IFS= read -r line; do say "  $line"; done
    return 1
  fi
  command -v guardctl >/dev/null || { say "guardctl is not installed"; return 1; }
  until out=$(guardctl status 2>&1 >/dev/null); do
    if ((SECONDS >= deadline)); then
      say "NOT reachable: guardd enforces, but does not answer on the system bus: ${out#guardctl: }"
      say "  Restart it: $(restart_hint)"
      return 1
    fi
    sleep 0.2
  done
  say "guarding: only approved programs may now open outbound mail connections."
}

# --- A former install into /usr/local (setup.sh before the package) ---------------------
# Its unit in /etc/systemd/system would hide the package's one in /lib/systemd/system.
old_files=(/usr/local/sbin/guardd /usr/local/sbin/guard-mta-agent /usr/local/bin/guardctl
  /usr/local/bin/guard-tui /usr/local/bin/guard-notify
  /etc/systemd/system/guardd.service /etc/systemd/system/mailguard-mta-agent.service
  /usr/local/share/man/{man8/guardd.8,man8/guardctl.8,man1/guard-tui.1,man1/guard-notify.1,man5/guardd.conf.5}
  /usr/local/share/bash-completion/completions/guardctl /usr/local/share/zsh/site-functions/_guardctl)
remove_old_install() {
  local found=()
  for f in "${old_files[@]}"; do [[ -e $f ]] && found+=("$f"); done
  ((${#found[@]})) || return 0
  say "removing the former install into /usr/local: ${found[*]}"
  if has_systemd; then
    systemctl disable --now guardd.service mailguard-mta-agent.service 2>/dev/null || true
  fi
  if [[ -x /usr/local/sbin/guardd ]]; then /usr/local/sbin/guardd --remove-rules || true; fi
  rm -f "${found[@]}"
  if has_systemd; then systemctl daemon-reload || true; fi
}

# Starts (or restarts) guardd the way this machine runs it: guardd.service where systemd
# is PID 1 and this is its namespace, else in the background right here.
start_guardd() {
  install -d -m 0755 "$run_dir"
  if has_systemd; then
    # On install the package's postinst enabled and started it (or kept the owner's
    # "disabled"); a restart is asked for by --restart.
    if [[ ${1:-} == restart ]]; then systemctl restart guardd.service
    else systemctl is-active --quiet guardd.service || systemctl enable --now guardd.service; fi
    say "guardd.service: $(systemctl is-active guardd.service || true)"
    return 0
  fi
  if in_private_netns; then
    say "network namespace trial: running guardd here in the background (not through systemd)"
  else
    say "no systemd here: running guardd in the background"
  fi
  ensure_system_bus
  if bus_answers; then
    # A running bus reads policy files only at start or when told to reload.
    dbus-send --system --type=method_call --dest=org.freedesktop.DBus / \
      org.freedesktop.DBus.ReloadConfig 2>/dev/null || true
  fi
  stop_background_guardd
  install -d -m 0750 "$log_dir"
  local config=$conf_dir/guardd.conf
  # The kernel hooks ([kernel] identity = "auto") attach to the cgroup2 root unless told
  # another cgroup, and would see every program of the PC, outside the trial's namespace
  # too (a denied program refused there as well). A trial guards only its namespace: it
  # attributes by /proc, unless guardd.conf names a cgroup of its own for the hooks.
  if in_private_netns && ! grep -Eq '^[[:space:]]*cgroup[[:space:]]*=[[:space:]]*"[^"]' "$config"; then
    config=$run_dir/trial-guardd.conf
    if grep -Eq '^[[:space:]]*\[kernel\]' "$conf_dir/guardd.conf"; then
      sed -E 's/^([[:space:]]*identity[[:space:]]*=[[:space:]]*)"auto"/\1"off"/' \
        "$conf_dir/guardd.conf" >"$config"
    else
      { cat "$conf_dir/guardd.conf"; printf '\n[kernel]\nidentity = "off"\n'; } >"$config"
    fi
    say "namespace trial: guardd attributes by /proc, not with hooks on the PC's cgroup root ($config)"
  fi
  # The log grows over runs: only what this guardd writes counts.
  local offset
  offset=$(stat -c %s "$log_dir/guardd.log" 2>/dev/null || echo 0)
  nohup "$sbin/guardd" --config "$config" --state-dir "$state_dir" \
    >>"$log_dir/guardd.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 100); do
    tail -c +$((offset + 1)) "$log_dir/guardd.log" | grep -q "enforcing:" && break
    kill -0 "$(cat "$pidfile")" 2>/dev/null || die "guardd did not start: $(tail -n 5 "$log_dir/guardd.log")"
    sleep 0.1
  done
}

package_installed() {
  dpkg-query -W -f='${Status}' mailguard 2>/dev/null | grep -q "install ok installed"
}

uninstall() {
  # What setup.sh started by itself (no systemd, or a namespace trial).
  stop_background_guardd
  stop_recorded "$run_dir/guard-mta-agent.pid" guard-mta-agent
  if [[ -e /etc/exim4/conf.d/main/50_mailguard ]]; then
    rm -f /etc/exim4/conf.d/main/50_mailguard /etc/exim4/conf.d/acl/50_mailguard /etc/exim4/mailguard-data.acl
    update-exim4.conf || true
    say "exim4: mailguard's ACL removed; messages it froze stay in the queue (exim -bp; thaw with exim -Mt ID)"
  fi
  if [[ -f /etc/postfix/main.cf ]] && command -v postconf >/dev/null &&
    [[ $(postconf -c /etc/postfix -h non_smtpd_milters) == *mailguard/milter.sock* ]]; then
    milters=$(postconf -c /etc/postfix -h non_smtpd_milters |
      sed -E 's/,? *\{ *unix:mailguard\/milter\.sock[^}]*\}//; s/^ *, *//')
    postconf -c /etc/postfix -e "non_smtpd_milters=$milters"
    postfix reload 2>/dev/null || true
    rm -rf "$(postconf -c /etc/postfix -h queue_directory)/mailguard"
    say "postfix: guardd's milter removed; messages it held stay in the hold queue (postqueue -p; release with postsuper -H ID)"
  fi
  if package_installed; then
    # prerm stops guardd.service and deletes guardd's table; purge removes settings,
    # history, logs and the group the package created.
    DEBIAN_FRONTEND=noninteractive apt-get purge -y mailguard
  elif [[ -x $sbin/guardd ]]; then
    "$sbin/guardd" --remove-rules || true
  fi
  remove_old_install
  # A bus setup.sh started stays: other programs may use it by now.
  if [[ -f $run_dir/dbus.pid ]]; then
    say "the system bus setup.sh started (pid $(cat "$run_dir/dbus.pid")) keeps running"
  fi
  rm -rf "$run_dir"
  say "removed (apt purge mailguard): settings, history and logs are gone."
}

[[ $(id -u) -eq 0 ]] || die "setup needs root: try 'sudo ./install/setup.sh'"

case "${1:-}" in
  --uninstall) uninstall; exit 0 ;;
  --check) check_guarding; exit $? ;;
  --restart)
    [[ -x $sbin/guardd ]] || die "mailguard is not installed: run 'sudo ./install/setup.sh'"
    start_guardd restart
    check_guarding
    exit $? ;;
  "") ;;
  *) die "unknown option '$1' (use --check, --restart, --uninstall, or no option to install)" ;;
esac

say "installing packages"
./install/deps.sh

say "building"
# A build of its own without the tests: quicker, and it leaves the test build alone.
# RelWithDebInfo (-O2, as CI's release preset and Debian's own packages): the build CI
# proves free of warnings. GCC 12 at -O3 (Release) reports false -Wrestrict warnings in
# std::string's operator+. The package is stripped of the debug information.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAILGUARD_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"

say "making the Debian package"
rm -f "$build"/mailguard_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls "$build"/mailguard_*.deb)

# postfix: guardd's milter socket lives in the queue directory, where a chrooted cleanup
# reaches it; its folder must exist before guardd starts (guardd.service's ReadWritePaths).
if [[ -f /etc/postfix/main.cf ]] && command -v postconf >/dev/null; then
  install -d -m 0755 "$(postconf -c /etc/postfix -h queue_directory)/mailguard"
fi

remove_old_install
stop_background_guardd  # the package's binaries replace the running one's
say "installing $deb with apt"
# --reinstall: a rebuilt package of the same version is installed again, not skipped.
DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall "./$deb"

# Refuse a bad settings file before anything else is started.
if ! "$sbin/guardd" --config "$conf_dir/guardd.conf" --check-config >/dev/null; then
  die "settings file $conf_dir/guardd.conf is not valid (see above)"
fi

start_guardd

# Debian's exim4: mail handed to it without TCP (sendmail, mail, cron) asks guardd about
# each message (install/exim4/). Only with the split configuration (conf.d), which
# update-exim4.conf builds from; a monolithic configuration is the owner's to edit.
exim_conf_d=/etc/exim4/conf.d
if [[ -d $exim_conf_d/main && -d $exim_conf_d/acl ]] && command -v update-exim4.conf >/dev/null; then
  say "exim4: installing mailguard's ACL into $exim_conf_d (messages of unapproved programs are frozen)"
  install -m 0644 install/exim4/main_50_mailguard "$exim_conf_d/main/50_mailguard"
  install -m 0644 install/exim4/acl_50_mailguard "$exim_conf_d/acl/50_mailguard"
  install -m 0644 install/exim4/data_acl_mailguard /etc/exim4/mailguard-data.acl
  if ! grep -qs "dc_use_split_config='true'" /etc/exim4/update-exim4.conf.conf; then
    say "exim4: the split configuration is off (dc_use_split_config): run 'dpkg-reconfigure exim4-config' and choose it, or add install/exim4/ to your exim4.conf.template by hand"
  fi
  update-exim4.conf || die "update-exim4.conf failed; remove $exim_conf_d/*/50_mailguard to undo"
  if has_systemd; then
    systemctl enable --now mailguard-mta-agent.service
    systemctl reload exim4 2>/dev/null || true
  else
    stop_recorded "$run_dir/guard-mta-agent.pid" guard-mta-agent
    nohup "$sbin/guard-mta-agent" >>"$log_dir/guard-mta-agent.log" 2>&1 &
    echo $! >"$run_dir/guard-mta-agent.pid"
  fi
fi

# postfix: mail handed to it without TCP (sendmail, mail, cron) is judged by guardd's milter
# at the end of each message (non_smtpd_milters; the owner's other milters stay, and keep
# their default action); guardd names the program that wrote it into the maildrop. While
# guardd does not answer, cleanup tempfails and the message waits in the maildrop.
pf_milter="{ unix:mailguard/milter.sock, default_action=tempfail }"
if [[ -f /etc/postfix/main.cf ]] && command -v postconf >/dev/null; then
  milters=$(postconf -c /etc/postfix -h non_smtpd_milters)
  if [[ $milters != *mailguard/milter.sock* ]]; then
    say "postfix: adding guardd's milter to non_smtpd_milters (messages of unapproved programs are held)"
    postconf -c /etc/postfix -e "non_smtpd_milters=${milters:+$milters, }$pf_milter"
  fi
  # The release agent (shipped in the package) runs postsuper for guardd.
  if has_systemd; then
    systemctl enable --now mailguard-mta-agent.service
    systemctl reload postfix 2>/dev/null || postfix reload 2>/dev/null || true
  else
    if [[ $(cat "/proc/$(cat "$run_dir/guard-mta-agent.pid" 2>/dev/null)/comm" 2>/dev/null) != guard-mta-agent ]]; then
      nohup "$sbin/guard-mta-agent" >>"$log_dir/guard-mta-agent.log" 2>&1 &
      echo $! >"$run_dir/guard-mta-agent.pid"
    fi
    postfix reload 2>/dev/null || true
  fi
fi

if ! check_guarding; then
  die "installed, but not guarding yet (see above); check again with: sudo ./install/setup.sh --check"
fi
say "next: list programs with 'guardctl programs', approve your mail client with 'sudo guardctl approve PATH'."
