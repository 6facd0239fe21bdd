#!/usr/bin/env bash
# Installs a pinned scim2-server (PyPI) into a venv in the cache, once; prints the path of
# its executable on the last line.
# Env: ROSTER_CACHE (default ~/.cache/roster), SCIM2_SERVER_VERSION (default 0.8.3).
set -euo pipefail
VERSION=${SCIM2_SERVER_VERSION:-0.8.3}
CACHE=${ROSTER_CACHE:-$HOME/.cache/roster}
VENV="$CACHE/scim2-server-$VERSION"
BIN="$VENV/bin/scim2-server"
if [[ ! -x $BIN ]]; then
  command -v python3 >/dev/null || { echo "scim2-server-bin: python3 is required" >&2; exit 1; }
  echo "scim2-server-bin: installing scim2-server $VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "scim2-server==$VERSION" >&2
fi
echo "$BIN"
