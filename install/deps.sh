#!/usr/bin/env bash
# Installs the Debian packages mailguard needs: to build and run (default), or also
# to test (--test). Non-interactive; safe to run again.
set -euo pipefail

build_and_run=(
  build-essential cmake pkg-config
  libnftnl-dev libmnl-dev libnetfilter-queue-dev
  libsdbus-c++-dev libsdbus-c++-bin libsystemd-dev
  libsqlite3-dev libssl-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libncurses-dev libcap-ng-dev
  libbpf-dev bpftool clang
  # The outside check's public address: from the router (UPnP IGD, NAT-PMP) or over HTTPS.
  libminiupnpc-dev libnatpmp-dev libcurl4-openssl-dev
  nftables iproute2 dbus util-linux polkitd
  scdoc
)
testing=(
  libgtest-dev libgmock-dev
  python3 sqlite3 tmux clang-format clang-tidy libclang-rt-14-dev
  conntrack procps
  nmap
  zsh
  dunst xvfb x11-apps imagemagick fonts-dejavu-core
  # test_polkit: openssl for the test users' password hashes (polkitd, with its text agent
  # pkttyagent, is a runtime dependency above).
  openssl
  lintian man-db
  # Name servers serving *.test in the tests' namespaces (dnsmasq-base: no service
  # started): the DNS tap's tests, and test_outside's blocklist zones and SPF/DMARC records
  # (guardd's own lookups use glibc's libresolv: no package).
  dnsmasq-base
  # test_address: a real UPnP IGD / NAT-PMP router in the test's own namespace. Its
  # debconf question miniupnpd/start_daemon is preseeded to false below: installing it
  # starts nothing and leaves the host's firewall alone.
  miniupnpd miniupnpd-nftables
)
# The MTA tests run a real exim (Debian's default MTA; it conflicts with postfix, so only
# where no other MTA is installed).
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
  testing+=(exim4-daemon-light)
fi

packages=("${build_and_run[@]}")
if [[ "${1:-}" == "--test" ]]; then packages+=("${testing[@]}"); fi

# The postfix test (tests/integration/postfix_fixture.py) runs postfix from its Debian
# package unpacked with `dpkg -x` (it conflicts with exim4 as an installed package): the
# package is downloaded to a cache, and postfix's own user and setgid group exist under
# names of their own.
if [[ "${1:-}" == "--test" ]]; then
  postfix_cache=/var/cache/mailguard-tests/postfix
  if ! compgen -G "$postfix_cache/postfix_*.deb" >/dev/null; then
    mkdir -p "$postfix_cache"
    (cd "$postfix_cache" && apt-get download -q postfix 2>/dev/null) ||
      (apt-get update -qq && cd "$postfix_cache" && apt-get download -q postfix)
  fi
  getent group mgpostdrop >/dev/null || groupadd --system mgpostdrop
  getent passwd mgpostfix >/dev/null ||
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin mgpostfix
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [[ " ${missing[*]} " == *" miniupnpd "* ]]; then
  echo "miniupnpd miniupnpd/start_daemon boolean false" | debconf-set-selections
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
