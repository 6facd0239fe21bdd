#!/usr/bin/env bash
# Installs pinned scim2-cli and scim2-tester (PyPI) into a venv in the cache, once: the
# real SCIM clients the tests push people to Roster's SCIM endpoint with, and the
# compliance checks they hold it to. Prints the venv's bin directory on the last line.
# Env: ROSTER_CACHE (default ~/.cache/roster), SCIM2_CLI_VERSION (default 0.6.0),
#      SCIM2_TESTER_VERSION (default 0.5.2).
set -euo pipefail
CLI=${SCIM2_CLI_VERSION:-0.6.0}
TESTER=${SCIM2_TESTER_VERSION:-0.5.2}
CACHE=${ROSTER_CACHE:-$HOME/.cache/roster}
VENV="$CACHE/scim2-tools-$CLI-$TESTER"
if [[ ! -x $VENV/bin/scim2 || ! -f $VENV/.complete ]]; then
  command -v python3 >/dev/null || { echo "scim2-tools-bin: python3 is required" >&2; exit 1; }
  echo "scim2-tools-bin: installing scim2-cli $CLI and scim2-tester $TESTER into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "scim2-cli==$CLI" "scim2-tester==$TESTER" >&2
  touch "$VENV/.complete"
fi
echo "$VENV/bin"
