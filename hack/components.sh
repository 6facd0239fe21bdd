# Sourced by test.sh and bench.sh: installs the test components when missing and exports
# where they are, as the test harness reads them.
ROSTER_CONTROL_PLANE_BIN=$(hack/control-plane-bins.sh)
ROSTER_SCIM2_SERVER=$(hack/scim2-server-bin.sh)
ROSTER_SCIM2_TOOLS=$(hack/scim2-tools-bin.sh)
ROSTER_POSTGRES_BIN=$(hack/postgres-bin.sh)
ROSTER_SLAPD=$(hack/slapd-bin.sh)
ROSTER_GO_TOOLS_BIN=$(hack/go-tools.sh)
export ROSTER_CONTROL_PLANE_BIN ROSTER_SCIM2_SERVER ROSTER_SCIM2_TOOLS ROSTER_POSTGRES_BIN ROSTER_SLAPD ROSTER_GO_TOOLS_BIN
