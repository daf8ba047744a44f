#!/usr/bin/env bash
# Installs mailguard on this PC and starts guarding it:
#   sudo ./install/setup.sh             install packages, build, install, start guardd
#   sudo ./install/setup.sh --uninstall stop guardd, delete its nftables table and files
# With systemd running it installs guardd.service; without systemd (a container, a
# network namespace trial) it starts the system bus if needed and runs guardd in the
# background, logging to /var/log/mailguard/guardd.log.
set -euo pipefail
src="$(dirname "$(readlink -f "$0")")/.."
cd "$src"

prefix=/usr/local
sbin=$prefix/sbin
bin=$prefix/bin
conf_dir=/etc/mailguard
state_dir=/var/lib/mailguard
log_dir=/var/log/mailguard
run_dir=/run/mailguard
pidfile=$run_dir/guardd.pid

say() { printf 'mailguard: %s\n' "$*"; }
die() { printf 'mailguard: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "setup needs root: try 'sudo ./install/setup.sh'"

# In a network namespace of its own (`ip netns exec try ./install/setup.sh`), guardd
# must run right here: systemd would start the service in the host's namespace.
in_private_netns() {
  local mine init
  mine=$(readlink /proc/self/ns/net)
  init=$(readlink /proc/1/ns/net 2>/dev/null) || return 0
  [[ $mine != "$init" ]]
}
has_systemd() { [[ -d /run/systemd/system ]] && ! in_private_netns; }

stop_background_guardd() {
  if [[ -f $pidfile ]]; then
    local pid
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null && grep -q guardd "/proc/$pid/comm" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
  fi
}

uninstall() {
  if has_systemd; then
    systemctl disable --now guardd.service 2>/dev/null || true
  else
    stop_background_guardd
  fi
  if [[ -x $sbin/guardd ]]; then "$sbin/guardd" --remove-rules || true; fi
  if has_systemd; then systemctl disable --now mailguard-mta-agent.service 2>/dev/null || true; fi
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
  rm -f "$sbin/guardd" "$sbin/guard-mta-agent" /etc/systemd/system/mailguard-mta-agent.service "$bin/guardctl" "$bin/guard-tui" \
    /etc/systemd/system/guardd.service \
    /usr/share/dbus-1/system.d/org.mailguard.Guard1.conf \
    /usr/share/polkit-1/actions/org.mailguard.policy \
    /usr/share/polkit-1/rules.d/50-mailguard.rules \
    /usr/lib/sysusers.d/mailguard.conf /usr/lib/tmpfiles.d/mailguard.conf \
    "$prefix"/share/man/{man8/guardd.8,man8/guardctl.8,man1/guard-tui.1,man1/guard-notify.1,man5/guardd.conf.5} \
    "$prefix/share/bash-completion/completions/guardctl" "$prefix/share/zsh/site-functions/_guardctl" \
    "$bin/guard-notify" /etc/xdg/autostart/guard-notify.desktop /usr/lib/systemd/user/guard-notify.service
  if has_systemd; then systemctl daemon-reload || true; fi
  say "removed. Settings in $conf_dir and state in $state_dir were kept; delete them by hand if you wish."
}

if [[ "${1:-}" == "--uninstall" ]]; then
  uninstall
  exit 0
elif [[ -n "${1:-}" ]]; then
  die "unknown option '$1' (use --uninstall, or no option to install)"
fi

say "installing packages"
./install/deps.sh

say "building"
# A build of its own without the tests: quicker, and it leaves the test build alone.
build=build/install
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMAILGUARD_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"

say "installing into $prefix"
install -D -m 0755 "$build/guardd/guardd" "$sbin/guardd"
for tool in guardctl guard-tui; do
  if [[ -x "$build/tui/$tool" ]]; then install -D -m 0755 "$build/tui/$tool" "$bin/$tool"; fi
done
for page in "$build"/man/*.[0-9]; do  # `man guardctl`: man-db searches $prefix/share/man
  [[ -e $page ]] || continue
  install -D -m 0644 "$page" "$prefix/share/man/man${page##*.}/${page##*/}"
done
install -D -m 0644 install/completion/guardctl.bash "$prefix/share/bash-completion/completions/guardctl"
install -D -m 0644 install/completion/_guardctl "$prefix/share/zsh/site-functions/_guardctl"
# guard-notify: started with each desktop session (XDG autostart, or the systemd user unit).
install -D -m 0755 "$build/tui/notify/guard-notify" "$bin/guard-notify"
install -d /etc/xdg/autostart /usr/lib/systemd/user
sed "s|@BINDIR@|$bin|g" install/guard-notify.desktop >/etc/xdg/autostart/guard-notify.desktop
sed "s|@BINDIR@|$bin|g" install/guard-notify.service >/usr/lib/systemd/user/guard-notify.service
install -d -m 0755 "$conf_dir"
if [[ ! -e $conf_dir/guardd.conf ]]; then
  install -m 0644 install/guardd.conf "$conf_dir/guardd.conf"
fi
install -d -m 0750 "$state_dir"
install -d -m 0750 "$log_dir"
getent group mailguard >/dev/null || groupadd --system mailguard
install -D -m 0644 install/org.mailguard.Guard1.conf /usr/share/dbus-1/system.d/org.mailguard.Guard1.conf
install -D -m 0644 install/org.mailguard.policy /usr/share/polkit-1/actions/org.mailguard.policy
install -D -m 0644 install/50-mailguard.rules /usr/share/polkit-1/rules.d/50-mailguard.rules
install -D -m 0644 install/sysusers.d/mailguard.conf /usr/lib/sysusers.d/mailguard.conf
install -D -m 0644 install/tmpfiles.d/mailguard.conf /usr/lib/tmpfiles.d/mailguard.conf
if has_systemd; then
  systemd-sysusers /usr/lib/sysusers.d/mailguard.conf || true
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/mailguard.conf || true
fi

# postfix: guardd's milter socket lives in the queue directory, where a chrooted cleanup
# reaches it; its folder must exist before guardd starts (guardd.service's ReadWritePaths).
if [[ -f /etc/postfix/main.cf ]] && command -v postconf >/dev/null; then
  install -d -m 0755 "$(postconf -c /etc/postfix -h queue_directory)/mailguard"
fi

# Refuse a bad settings file before anything is started.
if ! "$sbin/guardd" --config "$conf_dir/guardd.conf" --check-config >/dev/null; then
  die "settings file $conf_dir/guardd.conf is not valid (see above)"
fi

if has_systemd; then
  say "starting guardd.service"
  sed "s|@SBINDIR@|$sbin|g" install/guardd.service >/etc/systemd/system/guardd.service
  systemctl daemon-reload
  systemctl reload dbus 2>/dev/null || true
  systemctl enable --now guardd.service
  systemctl restart guardd.service
else
  say "no systemd here: running guardd in the background"
  if [[ ! -S /run/dbus/system_bus_socket ]] && command -v dbus-daemon >/dev/null; then
    mkdir -p /run/dbus
    dbus-daemon --system --fork || say "could not start the system bus; guardd enforces without it"
  elif [[ -S /run/dbus/system_bus_socket ]]; then
    # A running bus reads policy files only at start or when told to reload.
    dbus-send --system --type=method_call --dest=org.freedesktop.DBus / \
      org.freedesktop.DBus.ReloadConfig 2>/dev/null || true
  fi
  stop_background_guardd
  install -d -m 0755 "$run_dir"
  nohup "$sbin/guardd" --config "$conf_dir/guardd.conf" --state-dir "$state_dir" \
    >>"$log_dir/guardd.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 100); do
    grep -q "enforcing:" "$log_dir/guardd.log" 2>/dev/null && break
    kill -0 "$(cat "$pidfile")" 2>/dev/null || die "guardd did not start: $(tail -n 5 "$log_dir/guardd.log")"
    sleep 0.1
  done
fi

# Debian's exim4: mail handed to it without TCP (sendmail, mail, cron) asks guardd about
# each message (install/exim4/). Only with the split configuration (conf.d), which
# update-exim4.conf builds from; a monolithic configuration is the owner's to edit.
exim_conf_d=/etc/exim4/conf.d
if [[ -d $exim_conf_d/main && -d $exim_conf_d/acl ]] && command -v update-exim4.conf >/dev/null; then
  say "exim4: installing mailguard's ACL into $exim_conf_d (messages of unapproved programs are frozen)"
  install -m 0644 install/exim4/main_50_mailguard "$exim_conf_d/main/50_mailguard"
  install -m 0644 install/exim4/acl_50_mailguard "$exim_conf_d/acl/50_mailguard"
  install -m 0644 install/exim4/data_acl_mailguard /etc/exim4/mailguard-data.acl
  install -D -m 0755 "$build/guardd/mta/guard-mta-agent" "$sbin/guard-mta-agent"
  if ! grep -qs "dc_use_split_config='true'" /etc/exim4/update-exim4.conf.conf; then
    say "exim4: the split configuration is off (dc_use_split_config): run 'dpkg-reconfigure exim4-config' and choose it, or add install/exim4/ to your exim4.conf.template by hand"
  fi
  update-exim4.conf || die "update-exim4.conf failed; remove $exim_conf_d/*/50_mailguard to undo"
  if has_systemd; then
    sed "s|@SBINDIR@|$sbin|" install/mailguard-mta-agent.service >/etc/systemd/system/mailguard-mta-agent.service
    systemctl daemon-reload
    systemctl enable --now mailguard-mta-agent.service
    systemctl reload exim4 2>/dev/null || true
  else
    nohup "$sbin/guard-mta-agent" >>"$log_dir/guard-mta-agent.log" 2>&1 &
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
  install -D -m 0755 "$build/guardd/mta/guard-mta-agent" "$sbin/guard-mta-agent"
  if has_systemd; then
    sed "s|@SBINDIR@|$sbin|" install/mailguard-mta-agent.service >/etc/systemd/system/mailguard-mta-agent.service
    systemctl daemon-reload
    systemctl enable --now mailguard-mta-agent.service
    systemctl reload postfix 2>/dev/null || postfix reload 2>/dev/null || true
  else
    pgrep -x guard-mta-agent >/dev/null ||
      nohup "$sbin/guard-mta-agent" >>"$log_dir/guard-mta-agent.log" 2>&1 &
    postfix reload 2>/dev/null || true
  fi
fi

say "guarding: only approved programs may now open outbound mail connections."
say "next: list programs with 'guardctl programs', approve your mail client with 'sudo guardctl approve PATH'."
