#!/usr/bin/env bash
# Prints the path of OpenLDAP's slapd (with slapadd beside it), installing Debian's slapd
# package without configuring a system service when there is none.
set -euo pipefail
find_bin() { for p in /usr/sbin/slapd /usr/local/libexec/slapd; do [[ -x $p ]] && { echo "$p"; return; }; done; }
bin=$(find_bin || true)
if [[ -z $bin ]]; then
  command -v apt-get >/dev/null || { echo "slapd-bin: install OpenLDAP's slapd and slapadd" >&2; exit 1; }
  echo "slapd-bin: installing Debian's slapd" >&2
  export DEBIAN_FRONTEND=noninteractive
  # No system database or service: the harness writes its own cn=config per run.
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt-get update -qq >&2
  apt-get install -y -qq slapd ldap-utils >&2
  # Debian starts the service on install where it can; the harness never uses it.
  (command -v service >/dev/null && service slapd stop >/dev/null 2>&1) || true
  bin=$(find_bin || true)
fi
[[ -n $bin && -x $(dirname "$bin")/slapadd ]] || { echo "slapd-bin: no slapd/slapadd found" >&2; exit 1; }
echo "$bin"
