#!/usr/bin/env bash
# The main job, locally: a real kube-apiserver + etcd on loopback, Roster's CRDs, the
# examples, and the operator — left running in the background.
#
#   hack/run.sh          bring everything up (stops an earlier run first)
#   hack/run.sh down     stop everything this script started
#   hack/run.sh status   show what is running
#
# State (certificates, kubeconfig, logs, etcd data) lives in $ROSTER_CACHE/local
# (default ~/.cache/roster/local). Ports: apiserver 16443, etcd 12379/12380, operator
# probes 18081, scim2-server 18080 (the example Connector's baseUrl).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CACHE=${ROSTER_CACHE:-$HOME/.cache/roster}
STATE="$CACHE/local"
APISERVER_PORT=${APISERVER_PORT:-16443}
ETCD_PORT=${ETCD_PORT:-12379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-12380}
PROBE_ADDR=${PROBE_ADDR:-127.0.0.1:18081}
NAMESPACE=${NAMESPACE:-roster-demo}
SCIM_PORT=18080
SCIM_TOKEN=demo-token-change-me # the token examples/connectors.yaml puts in its Secret
KUBECONFIG_FILE="$STATE/kubeconfig"

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

stop_all() {
  for name in roster scim2-server kube-apiserver etcd; do
    pidfile="$STATE/$name.pid"
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      log "stopped $name ($pid)"
    fi
    rm -f "$pidfile"
  done
}

status() {
  for name in etcd kube-apiserver scim2-server roster; do
    pidfile="$STATE/$name.pid"
    if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "$name: running (pid $(cat "$pidfile"))"
    else
      echo "$name: stopped"
    fi
  done
}

# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 0.2 s, bounded.
wait_for() {
  local what=$1 limit=$2; shift 2
  for _ in $(seq $(( limit * 5 ))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up within ${limit}s; see the logs in $STATE"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

certificates() {
  command -v openssl >/dev/null || { log "installing openssl"; apt-get install -y openssl >/dev/null; }
  local d="$STATE/pki"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=roster-local-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/san.ext"
  openssl x509 -req -days 30 -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

up() {
  command -v cargo >/dev/null || die "cargo is required: install Rust with rustup (https://rustup.rs)"
  command -v go >/dev/null || die "Go is required to build the local control plane (https://go.dev/dl)"
  command -v curl >/dev/null || { log "installing curl"; apt-get install -y curl >/dev/null; }
  stop_all
  for p in "$APISERVER_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "${PROBE_ADDR##*:}" "$SCIM_PORT"; do
    port_free "$p" || die "port $p on 127.0.0.1 is in use; free it or set the *_PORT/PROBE_ADDR variables"
  done

  log "building the control plane binaries (first time: a few minutes)"
  bin=$(hack/control-plane-bins.sh)
  scim_bin=$(hack/scim2-server-bin.sh)
  log "building roster"
  cargo build --locked --quiet
  roster="$repo/target/debug/roster"

  rm -rf "$STATE"
  mkdir -p "$STATE"
  certificates
  token=$(openssl rand -hex 24)
  printf '%s,admin,uid-admin,"system:masters"\n' "$token" >"$STATE/tokens.csv"

  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  "$bin/etcd" --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn \
    >"$STATE/etcd.log" 2>&1 &
  echo $! >"$STATE/etcd.pid"
  wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  log "starting kube-apiserver on 127.0.0.1:$APISERVER_PORT"
  "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$STATE/pki/apiserver.crt" --tls-private-key-file "$STATE/pki/apiserver.key" \
    --client-ca-file "$STATE/pki/ca.crt" --token-auth-file "$STATE/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$STATE/pki/sa.pub" --service-account-signing-key-file "$STATE/pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --disable-admission-plugins ServiceAccount \
    --allow-privileged=true --cert-dir "$STATE/pki" \
    >"$STATE/kube-apiserver.log" 2>&1 &
  echo $! >"$STATE/kube-apiserver.pid"
  wait_for kube-apiserver 120 curl -sf --cacert "$STATE/pki/ca.crt" -H "Authorization: Bearer $token" \
    "https://127.0.0.1:$APISERVER_PORT/readyz"

  cat >"$KUBECONFIG_FILE" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: roster-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $STATE/pki/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: roster-local
  context:
    cluster: roster-local
    user: admin
current-context: roster-local
KUBECONFIG
  chmod 600 "$KUBECONFIG_FILE"
  kubectl() { "$bin/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

  log "starting scim2-server on 127.0.0.1:$SCIM_PORT (the example SCIM app)"
  "$scim_bin" --hostname 127.0.0.1 --port "$SCIM_PORT" --bearer-token "$SCIM_TOKEN" \
    >"$STATE/scim2-server.log" 2>&1 &
  echo $! >"$STATE/scim2-server.pid"
  scim() { curl -sf -H "Authorization: Bearer $SCIM_TOKEN" -H 'Content-Type: application/scim+json' "$@"; }
  wait_for scim2-server 30 scim "http://127.0.0.1:$SCIM_PORT/v2/ServiceProviderConfig"
  for group in all-staff engineers finance; do
    scim -X POST "http://127.0.0.1:$SCIM_PORT/v2/Groups" \
      -d "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"$group\"}" >/dev/null
  done

  log "installing the CRDs (roster crds | kubectl apply)"
  "$roster" crds | kubectl apply --server-side -f - >/dev/null
  kubectl wait --for condition=Established --timeout 60s crd \
    identities.roster.dev roles.roster.dev rolebindings.roster.dev connectors.roster.dev >/dev/null

  log "applying examples/ into namespace $NAMESPACE"
  kubectl create namespace "$NAMESPACE" >/dev/null
  kubectl apply --server-side -n "$NAMESPACE" -f examples/ >/dev/null

  log "starting the operator (probes on $PROBE_ADDR)"
  KUBECONFIG="$KUBECONFIG_FILE" nohup "$roster" run --probe-addr "$PROBE_ADDR" >"$STATE/roster.log" 2>&1 &
  echo $! >"$STATE/roster.pid"
  wait_for "the operator's /readyz" 60 curl -sf "http://$PROBE_ADDR/readyz"
  synced() { [[ $(kubectl get identities -o jsonpath='{.items[*].status.conditions[?(@.type=="Synced")].status}') == "True True True" ]]; }
  wait_for "the example identities to be provisioned" 60 synced

  kubectl get identities,connectors -A
  echo
  echo "Accounts in the SCIM app (userName active: groups):"
  scim "http://127.0.0.1:$SCIM_PORT/v2/Groups" | python3 -c '
import json, sys, urllib.request
groups = json.load(sys.stdin)["Resources"]
member_of = {}
for g in groups:
    for m in g.get("members", []):
        member_of.setdefault(m["value"], []).append(g["displayName"])
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
for u in json.load(urllib.request.urlopen(req))["Resources"]:
    print("  %-14s %-6s %s" % (u["userName"], u.get("active"), ", ".join(sorted(member_of.get(u["id"], [])))))
' "http://127.0.0.1:$SCIM_PORT/v2/Users" "$SCIM_TOKEN"
  cat <<EOF_MSG

Roster is running against a local control plane.
  export KUBECONFIG=$KUBECONFIG_FILE
  export PATH=$bin:\$PATH        # kubectl $("$bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1)
  kubectl get identities,connectors -A
  kubectl patch identity ada --type merge -p '{"spec":{"attributes":{"department":"finance"}}}'   # a mover
  kubectl patch identity ada --type merge -p '{"spec":{"state":"Terminated"}}'                    # a leaver
  kubectl get identity ada -o jsonpath='{.status.deprovisioning}'                                  # the receipt
  curl -s -H 'Authorization: Bearer $SCIM_TOKEN' http://127.0.0.1:$SCIM_PORT/v2/Users           # the SCIM app
  curl -s http://$PROBE_ADDR/metrics | grep roster_
Logs: $STATE/{roster,scim2-server,kube-apiserver,etcd}.log
Stop: hack/run.sh down
EOF_MSG
}

case "${1:-up}" in
  up) up ;;
  down) stop_all ;;
  status) status ;;
  *) die "usage: hack/run.sh [up|down|status]" ;;
esac
