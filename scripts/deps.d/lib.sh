#!/usr/bin/env bash
# Helpers sourced by the deps scripts (this file itself is skipped: it does nothing when run).
# apt_need PKG CMD: install Debian package PKG when command CMD is missing.
apt_need() {
  local pkg=$1 cmd=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: $cmd is missing; install it with: sudo apt-get install -y $pkg" >&2
    return 0
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    export APT_UPDATED=1
  fi
  echo "deps: installing $pkg" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
}
