#!/usr/bin/env bash
# The main job, locally: a real kube-apiserver, kube-controller-manager and etcd on
# loopback, Roster's CRDs, the examples, and the operator — left running in the
# background.
#
#   hack/run.sh          bring everything up (stops an earlier run first)
#   hack/run.sh down     stop everything this script started
#   hack/run.sh status   show what is running
#
# State (certificates, kubeconfig, logs, etcd data) lives in $ROSTER_CACHE/local
# (default ~/.cache/roster/local); PostgreSQL's data directory lives in /tmp when run as
# root (its server refuses to run as root and cannot enter /root). Ports: apiserver
# 16443, etcd 12379/12380, kube-controller-manager 18257, operator probes 18081, and the
# example Connectors' apps:
# scim2-server 18080, slapd 18389, PostgreSQL 18432.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

CACHE=${ROSTER_CACHE:-$HOME/.cache/roster}
STATE="$CACHE/local"
APISERVER_PORT=${APISERVER_PORT:-16443}
ETCD_PORT=${ETCD_PORT:-12379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-12380}
KCM_PORT=${KCM_PORT:-18257}
# What makes the built-in edit, view and admin ClusterRoles hold rules (aggregation),
# namespaces finish deleting, owned objects go with their owners, and ServiceAccounts and
# Deployments work; node, volume and cloud controllers have nothing to do here.
CONTROLLERS=clusterrole-aggregation-controller,namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller,deployment-controller,replicaset-controller
PROBE_ADDR=${PROBE_ADDR:-127.0.0.1:18081}
SCIM_PUSH_ADDR=${SCIM_PUSH_ADDR:-127.0.0.1:18443} # where HR systems push (docs/sources/scim.md)
NAMESPACE=${NAMESPACE:-roster-demo}
SCIM_PORT=18080
SCIM_TOKEN=demo-token-change-me # the token examples/connectors.yaml puts in its Secret
LDAP_PORT=18389
LDAP_SUFFIX=dc=corp,dc=example
LDAP_PASSWORD=demo-ldap-password-change-me # as in examples/connectors.yaml
PG_PORT=18432
PG_PASSWORD=demo-pg-password-change-me     # as in examples/connectors.yaml
KUBECONFIG_FILE="$STATE/kubeconfig"

log() { printf 'run.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

stop_all() {
  if [[ -f $STATE/pg.dir ]]; then
    pg_dir=$(cat "$STATE/pg.dir")
    if [[ -f $pg_dir/data/postmaster.pid ]]; then
      as_postgres "$(cat "$STATE/pg.bin")/pg_ctl" stop -D "$pg_dir/data" -m fast >/dev/null 2>&1 || true
      log "stopped postgres"
    fi
    rm -rf "$pg_dir" "$STATE/pg.dir"
  fi
  for name in roster slapd scim2-server kube-controller-manager kube-apiserver etcd; do
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
  if [[ -f $STATE/pg.dir && -f $(cat "$STATE/pg.dir")/data/postmaster.pid ]]; then
    echo "postgres: running (port $PG_PORT)"
  else
    echo "postgres: stopped"
  fi
  for name in etcd kube-apiserver kube-controller-manager scim2-server slapd roster; do
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

# as_postgres CMD...: PostgreSQL's server refuses to run as root.
as_postgres() {
  if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The example directory: people, disabled and groups containers, a least-privilege bind
# entry for Roster, and the groups the example Roles name.
start_ldap() {
  local slapd=$1 d="$STATE/ldap" modules
  modules=$(dirname "$(ls /usr/lib/ldap/back_mdb.so /usr/lib/*/ldap/back_mdb.so 2>/dev/null | head -1)")
  mkdir -p "$d/config" "$d/db"
  local roster_dn="cn=roster,$LDAP_SUFFIX"
  sed -e "s|@DIR@|$d|g" -e "s|@TLS_CA@|$STATE/pki/ca.crt|g" \
    -e "s|@TLS_CERT@|$STATE/pki/apiserver.crt|g" -e "s|@TLS_KEY@|$STATE/pki/apiserver.key|g" \
    -e "s|@MODULES@|$modules|g" -e "s|@SUFFIX@|$LDAP_SUFFIX|g" -e "s|@ROOT_DN@|cn=admin,$LDAP_SUFFIX|g" \
    -e "s|@ROOT_PW@|$(openssl rand -hex 16)|g" -e "s|@ROSTER_DN@|$roster_dn|g" \
    hack/slapd.ldif.in >"$d/config.ldif"
  {
    printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: corp\no: Example Corp\n\n' "$LDAP_SUFFIX"
    printf 'dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: roster\nuserPassword: %s\n\n' "$roster_dn" "$LDAP_PASSWORD"
    for ou in people disabled groups; do
      printf 'dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "$LDAP_SUFFIX" "$ou"
    done
    # groupOfNames needs a member; the empty DN stands in until Roster adds people.
    for g in all-staff engineers finance; do
      printf 'dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\nmember:\n\n' "$g" "$LDAP_SUFFIX" "$g"
    done
  } >"$d/base.ldif"
  "$(dirname "$slapd")/slapadd" -n0 -F "$d/config" -l "$d/config.ldif" >"$d/slapadd.log" 2>&1
  "$(dirname "$slapd")/slapadd" -n1 -F "$d/config" -l "$d/base.ldif" >>"$d/slapadd.log" 2>&1
  "$slapd" -h "ldap://127.0.0.1:$LDAP_PORT/" -F "$d/config" -d none >"$STATE/slapd.log" 2>&1 &
  echo $! >"$STATE/slapd.pid"
  wait_for slapd 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$LDAP_PORT"
}

# The example database server, with a CREATEROLE login for Roster and the group roles
# the example Roles name.
start_postgres() {
  local bin=$1 d
  d=$(mktemp -d "${TMPDIR:-/tmp}/roster-local-pg.XXXXXX")
  echo "$d" >"$STATE/pg.dir"
  echo "$bin" >"$STATE/pg.bin"
  [[ $EUID -eq 0 ]] && chown postgres "$d"
  as_postgres "$bin/initdb" -D "$d/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >"$STATE/postgres-init.log" 2>&1
  as_postgres "$bin/pg_ctl" start -D "$d/data" -l "$d/postgres.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $d" >/dev/null
  as_postgres "$bin/psql" -h "$d" -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q -c "
    CREATE ROLE roster LOGIN CREATEROLE PASSWORD '$PG_PASSWORD';
    GRANT pg_signal_backend TO roster;
    CREATE ROLE app_readwrite NOLOGIN;
    CREATE ROLE finance_readonly NOLOGIN;" >/dev/null
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
  # jemalloc, the operator's allocator, is built from source with cc and make.
  { command -v cc && command -v make; } >/dev/null || { log "installing build-essential"; apt-get install -y build-essential >/dev/null; }
  stop_all
  for p in "$APISERVER_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT" "$KCM_PORT" "${PROBE_ADDR##*:}" "$SCIM_PORT" "$LDAP_PORT" "$PG_PORT"; do
    port_free "$p" || die "port $p on 127.0.0.1 is in use; free it or set the *_PORT/PROBE_ADDR variables"
  done

  log "building the control plane binaries (first time: a few minutes)"
  bin=$(hack/control-plane-bins.sh)
  scim_bin=$(hack/scim2-server-bin.sh)
  slapd_bin=$(hack/slapd-bin.sh)
  pg_bin=$(hack/postgres-bin.sh)
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

  log "starting kube-controller-manager on 127.0.0.1:$KCM_PORT"
  "$bin/kube-controller-manager" --kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$STATE/kcm" \
    --leader-elect=false --controllers "$CONTROLLERS" --use-service-account-credentials=false \
    --root-ca-file "$STATE/pki/ca.crt" --service-account-private-key-file "$STATE/pki/sa.key" \
    >"$STATE/kube-controller-manager.log" 2>&1 &
  echo $! >"$STATE/kube-controller-manager.pid"
  aggregated() { [[ -n $(kubectl get clusterrole edit -o jsonpath='{.rules[*].verbs}') ]]; }
  wait_for "ClusterRole aggregation (the built-in edit role's rules)" 60 aggregated

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

  log "starting slapd on 127.0.0.1:$LDAP_PORT (the example directory)"
  start_ldap "$slapd_bin"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT (the example database)"
  start_postgres "$pg_bin"

  log "installing the CRDs and the admission policies (roster crds, roster admission-policy)"
  "$roster" crds | kubectl apply --server-side -f - >/dev/null
  "$roster" admission-policy | kubectl apply --server-side -f - >/dev/null
  kubectl wait --for condition=Established --timeout 60s crd \
    identities.roster.dev roles.roster.dev rolebindings.roster.dev connectors.roster.dev \
    identitysources.roster.dev scimusers.roster.dev >/dev/null

  log "applying examples/ into namespace $NAMESPACE"
  kubectl create namespace "$NAMESPACE" >/dev/null
  kubectl apply --server-side -n "$NAMESPACE" -f examples/ >/dev/null

  log "starting the operator (probes on $PROBE_ADDR, SCIM pushes on $SCIM_PUSH_ADDR)"
  # Plain HTTP for the push endpoint: a demo on loopback (docs/sources/scim.md for TLS).
  KUBECONFIG="$KUBECONFIG_FILE" nohup "$roster" run --probe-addr "$PROBE_ADDR" \
    --allow-target-network 127.0.0.0/8 \
    --scim-addr "$SCIM_PUSH_ADDR" --scim-plaintext >"$STATE/roster.log" 2>&1 &
  echo $! >"$STATE/roster.pid"
  wait_for "the operator's /readyz" 60 curl -sf "http://$PROBE_ADDR/readyz"
  synced() { [[ $(kubectl get identities -o jsonpath='{.items[*].status.conditions[?(@.type=="Synced")].status}') == "True True True" ]]; }
  wait_for "the example identities to be provisioned" 60 synced

  kubectl get identities,connectors,identitysources -A
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
  echo
  echo "Accounts in the directory (entry: groups):"
  if command -v ldapsearch >/dev/null; then
    for base in people disabled; do
      ldapsearch -x -LLL -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=roster,$LDAP_SUFFIX" -w "$LDAP_PASSWORD" \
        -b "ou=$base,$LDAP_SUFFIX" -s one '(objectClass=inetOrgPerson)' memberOf |
        awk '/^dn:/ {if (dn) print "  " dn ":" g; dn=$2; g=""} /^memberOf:/ {split($2, a, ","); sub("cn=", "", a[1]); g=g " " a[1]} END {if (dn) print "  " dn ":" g}'
    done
  else
    echo "  (install ldap-utils for ldapsearch to see them)"
  fi
  echo
  echo "Roles in PostgreSQL (role, can log in: member of):"
  as_postgres "$pg_bin/psql" -h "$(cat "$STATE/pg.dir")" -p "$PG_PORT" -U postgres -d postgres -At -F ' ' -c "
    SELECT '  ' || r.rolname, r.rolcanlogin, ':', string_agg(g.rolname, ', ' ORDER BY g.rolname)
    FROM pg_roles r LEFT JOIN pg_auth_members m ON m.member = r.oid LEFT JOIN pg_roles g ON g.oid = m.roleid
    WHERE shobj_description(r.oid, 'pg_authid') LIKE 'roster:%'
    GROUP BY r.rolname, r.rolcanlogin ORDER BY 1"
  echo
  echo "Roster's bindings in the cluster:"
  kubectl get clusterrolebindings,rolebindings -A -l app.kubernetes.io/managed-by=roster \
    -o custom-columns='BINDING:.metadata.name,NAMESPACE:.metadata.namespace,ROLE:.roleRef.name,SUBJECTS:.subjects[*].name'
  echo
  echo "What that access is, asked of the cluster's own authorizer (kubectl auth can-i --as):"
  for who in ada grace; do
    for verb in "create deployments" "get pods" "delete secrets"; do
      # shellcheck disable=SC2086 # the verb and resource are two words on purpose
      printf '  %-6s %-19s in %s: %s\n' "$who" "$verb" "$NAMESPACE" \
        "$(kubectl auth can-i $verb -n "$NAMESPACE" --as "$who" 2>/dev/null || true)"
    done
  done
  cat <<EOF_MSG

Roster is running against a local control plane.
  export KUBECONFIG=$KUBECONFIG_FILE
  export PATH=$bin:\$PATH        # kubectl $("$bin/kubectl" version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -1)
  kubectl get identities,connectors,identitysources -A
  # The people come from HR: edit the export, as HR would, and apply it.
  kubectl -n $NAMESPACE get configmap hr-export -o jsonpath='{.data.workers\.csv}' > workers.csv
  sed -i 's/,engineering,Staff Engineer,/,finance,Staff Engineer,/' workers.csv                  # HR moves ada
  sed -i 's/^\(ada,.*\),Active\$/\1,Terminated/' workers.csv                                    # HR terminates ada
  kubectl -n $NAMESPACE create configmap hr-export --from-file=workers.csv --dry-run=client -o yaml |
    kubectl apply --server-side --force-conflicts -f -                                            # ...read within 10 s
  kubectl get identity ada -o jsonpath='{.status.deprovisioning}'                                  # the receipt
  curl -s -H 'Authorization: Bearer $SCIM_TOKEN' http://127.0.0.1:$SCIM_PORT/v2/Users           # the SCIM app
  ldapsearch -x -H ldap://127.0.0.1:$LDAP_PORT -D cn=roster,$LDAP_SUFFIX -w $LDAP_PASSWORD -b $LDAP_SUFFIX uid memberOf
  kubectl get rolebindings -n $NAMESPACE -l app.kubernetes.io/managed-by=roster -o wide            # cluster access
  $roster report                                                                                  # the governance numbers
  curl -s http://$PROBE_ADDR/metrics | grep roster_
  kubectl auth can-i create deployments -n $NAMESPACE --as ada                                    # real access
Logs: $STATE/{roster,scim2-server,slapd,kube-apiserver,kube-controller-manager,etcd}.log and PostgreSQL's in $(cat "$STATE/pg.dir")
Stop: hack/run.sh down
EOF_MSG
}

case "${1:-up}" in
  up) up ;;
  down) stop_all ;;
  status) status ;;
  *) die "usage: hack/run.sh [up|down|status]" ;;
esac
