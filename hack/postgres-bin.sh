#!/usr/bin/env bash
# Prints the directory of the PostgreSQL server binaries (initdb, postgres, pg_ctl),
# installing Debian's postgresql package when there is none.
set -euo pipefail
find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
dir=$(find_bin)
if [[ -z $dir || ! -x $dir/initdb ]]; then
  command -v apt-get >/dev/null || { echo "postgres-bin: install the PostgreSQL server (initdb, postgres)" >&2; exit 1; }
  echo "postgres-bin: installing Debian's postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  dir=$(find_bin)
fi
[[ -x $dir/initdb && -x $dir/postgres ]] || { echo "postgres-bin: no initdb/postgres in $dir" >&2; exit 1; }
echo "$dir"
