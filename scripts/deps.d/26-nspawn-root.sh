#!/usr/bin/env bash
# A small Debian root that systemd-nspawn boots, so the e2e tests run the
# shipped units under a real systemd (e2e/systemd_nspawn_test.go). Built once
# with debootstrap (about 50 s and 240 MB) outside the repository and reused.
# procps: /bin/kill, which a real Debian server has and minbase lacks
# (ExecReload=/bin/kill -HUP $MAINPID). Where:
#   ${LBSERVER_NSPAWN_ROOT:-/var/cache/lbserver/nspawn-root}
# The root is built in a temporary folder next to it and renamed into place
# only when complete; its stamp file names the recipe, so a changed recipe
# builds a new root. Only root can build it (debootstrap, nspawn need root).
set -euo pipefail
# shellcheck source=scripts/deps.d/lib.sh
source "$(dirname "$0")/lib.sh"
PATH="$PATH:/usr/sbin:/sbin"

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: the systemd tests need root (systemd-nspawn, debootstrap); skipping the nspawn root" >&2
  exit 0
fi

# --no-install-recommends: with recommends, systemd-container pulls in
# libnss-mymachines, which edits the host's /etc/nsswitch.conf.
apt_need_norec() {
  local pkg=$1 cmd=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    export APT_UPDATED=1
  fi
  echo "deps: installing $pkg" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
}
apt_need_norec systemd-container systemd-nspawn
apt_need_norec debootstrap debootstrap
apt_need_norec systemd systemd-socket-activate

# The packages are fetched over plain http: only their signatures make them
# trustworthy. debootstrap checks them with the Debian archive keyring, and
# with --force-check-gpg a missing keyring or signature is an error, never a
# warning. LBSERVER_DEBIAN_KEYRING names another keyring (the default one is
# installed when missing).
default_keyring=/usr/share/keyrings/debian-archive-keyring.gpg
keyring=${LBSERVER_DEBIAN_KEYRING:-$default_keyring}
if [ ! -s "$keyring" ] && [ "$keyring" = "$default_keyring" ]; then
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    export APT_UPDATED=1
  fi
  echo "deps: installing debian-archive-keyring" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debian-archive-keyring >/dev/null || true
fi
if [ ! -s "$keyring" ]; then
  echo "deps: the Debian archive keyring $keyring is missing (apt-get install debian-archive-keyring); not building the nspawn root from unverified packages" >&2
  exit 1
fi

root=${LBSERVER_NSPAWN_ROOT:-/var/cache/lbserver/nspawn-root}
suite=bookworm
include=systemd,systemd-sysv,dbus,procps
recipe="debootstrap --variant=minbase --include=$include $suite"
stamp="$root/.lbserver-root"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$recipe" ]; then
  exit 0
fi

# The mirror apt already uses (deb822 sources or the classic list).
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

parent=$(dirname "$root")
mkdir -p "$parent"
tmp=$(mktemp -d "$parent/.nspawn-root.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "deps: building the systemd-nspawn root $root ($recipe, $mirror); about 50 s" >&2
debootstrap --force-check-gpg --keyring="$keyring" --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >"$tmp.log" 2>&1 || {
  tail -n 20 "$tmp.log" >&2
  rm -f "$tmp.log"
  exit 1
}
rm -f "$tmp.log"
echo "$recipe" >"$tmp/.lbserver-root"
# Replace an old root (other recipe) only after the new one is complete.
# mv -T: never move the new root inside one another run has just put there.
if [ -e "$root" ]; then
  mv -T "$root" "$tmp.old"
fi
if ! mv -T "$tmp" "$root"; then
  [ "$(cat "$stamp" 2>/dev/null)" = "$recipe" ] || exit 1 # another run finished first: fine
fi
rm -rf "$tmp.old"
