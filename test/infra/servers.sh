#!/usr/bin/env bash
# Starts and stops the real servers the integration tests talk to, on free loopback ports:
#   etcd + kube-apiserver (envtest-style: TLS, admin client cert in system:masters, RBAC, no
#   kubelet), kube-controller-manager (Job controller, garbage collector, namespace, service
#   account and node lifecycle controllers, pod GC) and kube-scheduler on the admin kubeconfig,
#   Kueue (its CRDs, its controller manager and its webhooks on 127.0.0.1, for Jobs in namespaces
#   labelled smolstage.dev/kueue=enabled only), and an S3-compatible server (moto in server
#   mode). Nodes come from the tests' node agent (test/support/node-agent.ts).
#
#   servers.sh start STATE_DIR   build what is missing, start everything, wait until ready, and
#                                write STATE_DIR/env (export lines for the SMOLSTAGE_TEST_* vars)
#   servers.sh stop STATE_DIR    stop what start left running (safe to call twice)
#
# Fixed ports instead of free ones: SMOLSTAGE_TEST_ETCD_PORT, SMOLSTAGE_TEST_KUBE_PORT,
# SMOLSTAGE_TEST_S3_PORT (start fails with a one-line error if one is taken).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The kube-controller-manager controllers the tests run against (exported to them as well).
# The namespace label under which the test Kueue acts (webhooks and controllers; exported too).
SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL=smolstage.dev/kueue=enabled

SMOLSTAGE_TEST_CONTROLLERS=job-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,node-lifecycle-controller,pod-garbage-collector-controller

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pick_port VAR: the port named by the env var VAR if set (must be free), else a free one.
pick_port() {
  local var=$1 port=${!1:-}
  if [ -n "$port" ]; then
    port_in_use "$port" && die "port $port ($var) is in use; stop what listens there or unset $var to use a free port"
    echo "$port"
  else
    free_port
  fi
}

# spawn NAME CMD...: run CMD in its own session (so stop can end it with its children), log to
# STATE/logs/NAME.log and remember the pid.
spawn() {
  local name=$1
  shift
  setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo "$!" >"$state/pids/$name"
}

# wait_until NAME SECONDS CMD...: poll CMD until it succeeds; on timeout or if NAME died, show
# the end of its log and fail.
wait_until() {
  local name=$1 seconds=$2 pid i
  shift 2
  pid=$(cat "$state/pids/$name")
  for ((i = 0; i < seconds * 4; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$state/logs/$name.log" >&2
      die "$name exited during start-up (log above, full log in $state/logs/$name.log)"
    fi
    sleep 0.25
  done
  tail -n 20 "$state/logs/$name.log" >&2
  die "$name was not ready after ${seconds}s (log above, full log in $state/logs/$name.log)"
}

make_certs() {
  local pki=$state/pki
  require_command openssl "install OpenSSL (Debian: apt-get install openssl)"
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=smolstage-test-ca \
      -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key -out apiserver.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1\nextendedKeyUsage=serverAuth\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile apiserver.ext -out apiserver.crt
    # The admin identity: group system:masters bypasses RBAC, like envtest's admin user.
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=smolstage-admin" -keyout admin.key -out admin.csr
    printf 'extendedKeyUsage=clientAuth\n' >admin.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile admin.ext -out admin.crt
    # Kueue's webhook server (and its metrics server): the apiserver calls https://127.0.0.1:PORT.
    openssl req -newkey rsa:2048 -nodes -subj /CN=smolstage-test-kueue -keyout kueue.key -out kueue.csr
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >kueue.ext
    openssl x509 -req -in kueue.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile kueue.ext -out kueue.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
  ) >"$state/logs/openssl.log" 2>&1 || die "openssl failed to make the test certificates (see $state/logs/openssl.log)"
}

write_kubeconfig() {
  local pki=$state/pki b64="base64 -w0"
  cat >"$state/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: smolstage-test
  cluster:
    server: https://127.0.0.1:$kube_port
    certificate-authority-data: $($b64 "$pki/ca.crt")
users:
- name: smolstage-admin
  user:
    client-certificate-data: $($b64 "$pki/admin.crt")
    client-key-data: $($b64 "$pki/admin.key")
contexts:
- name: smolstage-test
  context:
    cluster: smolstage-test
    user: smolstage-admin
current-context: smolstage-test
KUBECONFIG
}

# Applies Kueue's CRDs (server-side: the Workload CRD is too large for the last-applied
# annotation) and webhook configurations from its module source, writes its Configuration and
# starts it.
start_kueue() {
  local kueue=$1 src=$2 python=$3 webhook_port=$4 metrics_port=$5 health_port=$6
  local dir=$state/kueue pki=$state/pki crds=$2/config/components/crd/bases
  local kctl=("$KUBECTL" --kubeconfig "$state/kubeconfig") label_key=${SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL%%=*}
  mkdir -p "$dir/certs" "$dir/etc/kueue/metrics/certs"
  cp "$pki/kueue.crt" "$dir/certs/tls.crt"
  cp "$pki/kueue.key" "$dir/certs/tls.key"
  cp "$dir/certs/tls.crt" "$dir/certs/tls.key" "$dir/etc/kueue/metrics/certs/"
  "${kctl[@]}" apply --server-side --field-manager smolstage-test -f "$crds" >"$state/logs/kueue-setup.log" 2>&1 &&
    "${kctl[@]}" wait --for condition=established --timeout 60s -f "$crds" >>"$state/logs/kueue-setup.log" 2>&1 &&
    "${kctl[@]}" create namespace kueue-system >>"$state/logs/kueue-setup.log" 2>&1 ||
    die "applying Kueue's CRDs failed (see $state/logs/kueue-setup.log)"
  "$python" "$SMOLSTAGE_INFRA_DIR/kueue-webhooks.py" "$src/config/components/webhook/manifests.yaml" \
    "$webhook_port" "$pki/ca.crt" "$SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL" >"$dir/webhooks.json" ||
    die "could not write Kueue's webhook configurations from its module source"
  "${kctl[@]}" apply --server-side --field-manager smolstage-test -f "$dir/webhooks.json" >>"$state/logs/kueue-setup.log" 2>&1 ||
    die "applying Kueue's webhook configurations failed (see $state/logs/kueue-setup.log)"
  # Kueue admits only Jobs with a kueue.x-k8s.io/queue-name label, in namespaces labelled
  # $SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL; no leader election, webhooks with the certificate above, the
  # visibility API server off (it binds a fixed port and needs an APIService).
  cat >"$dir/config.yaml" <<CONFIG
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
namespace: kueue-system
manageJobsWithoutQueueName: false
managedJobsNamespaceSelector:
  matchLabels:
    $label_key: ${SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL#*=}
internalCertManagement:
  enable: false
webhook:
  host: 127.0.0.1
  port: $webhook_port
  certDir: $dir/certs
metrics:
  bindAddress: 127.0.0.1:$metrics_port
health:
  healthProbeBindAddress: 127.0.0.1:$health_port
leaderElection:
  leaderElect: false
integrations:
  frameworks:
  - batch/job
featureGates:
  VisibilityOnDemand: false
CONFIG
  # With its own certificate management off, Kueue reads its metrics certificate from the fixed
  # path /etc/kueue/metrics/certs (cmd/kueue/main.go). So it runs in a private mount namespace in
  # which /etc is a folder holding only kueue/metrics/certs: Kueue is a static binary and reaches
  # the apiserver by IP, so it needs nothing else from /etc. Root gets a plain mount namespace,
  # anyone else a user namespace that maps them to root.
  local ns=(unshare --mount --propagation private)
  unshare --mount true 2>/dev/null || ns=(unshare --user --map-root-user --mount --propagation private)
  spawn kueue env KUBECONFIG="$state/kubeconfig" "${ns[@]}" \
    bash -c 'mount --bind "$0" /etc && exec "$@"' "$dir/etc" "$kueue" --config "$dir/config.yaml"
}

kube_ready() {
  curl -fsS --cacert "$state/pki/ca.crt" --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" \
    "https://127.0.0.1:$kube_port/readyz"
}

start() {
  require_command curl "install curl (Debian: apt-get install curl)"
  require_command setsid "install util-linux (Debian: apt-get install util-linux)"
  mkdir -p "$state/logs" "$state/pids"

  local python tools etcd_port etcd_peer_port s3_port kcm_port scheduler_port
  local kueue_webhook_port kueue_metrics_port kueue_health_port
  python=$("$SMOLSTAGE_INFRA_DIR/python.sh")
  tools=$("$SMOLSTAGE_INFRA_DIR/go-tools.sh" etcd kube kueue)
  local ETCD KUBE_APISERVER KUBE_CONTROLLER_MANAGER KUBE_SCHEDULER KUBECTL KUEUE KUEUE_SOURCE
  ETCD=$(sed -n 's/^ETCD=//p' <<<"$tools")
  KUBE_APISERVER=$(sed -n 's/^KUBE_APISERVER=//p' <<<"$tools")
  KUBE_CONTROLLER_MANAGER=$(sed -n 's/^KUBE_CONTROLLER_MANAGER=//p' <<<"$tools")
  KUBE_SCHEDULER=$(sed -n 's/^KUBE_SCHEDULER=//p' <<<"$tools")
  KUBECTL=$(sed -n 's/^KUBECTL=//p' <<<"$tools")
  KUEUE=$(sed -n 's/^KUEUE=//p' <<<"$tools")
  KUEUE_SOURCE=$(sed -n 's/^KUEUE_SOURCE=//p' <<<"$tools")
  [ -d "$KUEUE_SOURCE/config/components/crd/bases" ] ||
    die "no Kueue source with CRDs at '$KUEUE_SOURCE' (go mod download of sigs.k8s.io/kueue failed?)"

  etcd_port=$(pick_port SMOLSTAGE_TEST_ETCD_PORT)
  etcd_peer_port=$(free_port)
  kube_port=$(pick_port SMOLSTAGE_TEST_KUBE_PORT)
  s3_port=$(pick_port SMOLSTAGE_TEST_S3_PORT)
  kcm_port=$(free_port)
  scheduler_port=$(free_port)
  kueue_webhook_port=$(free_port)
  kueue_metrics_port=$(free_port)
  kueue_health_port=$(free_port)

  make_certs

  # moto starts slowest (Python imports), so it goes first and is awaited last.
  spawn s3 "$(dirname "$python")/moto_server" -H 127.0.0.1 -p "$s3_port"

  spawn etcd "$ETCD" --name smolstage-test --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "smolstage-test=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_until etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  local pki=$state/pki
  # ServiceAccount admission is off as in controller-runtime's envtest: with no controller-manager
  # nothing creates the default ServiceAccount, and tests create pods themselves.
  spawn kube-apiserver "$KUBE_APISERVER" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$kube_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC \
    --disable-admission-plugins ServiceAccount \
    --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true
  write_kubeconfig
  wait_until kube-apiserver 90 kube_ready

  # The controllers the operator's objects meet in a cluster, on the admin kubeconfig (one
  # identity, no per-controller service-account credentials). Not started: the replica, deployment
  # and similar controllers (nothing here uses them), and taint-based eviction.
  local kubeconfig=$state/kubeconfig
  spawn kube-controller-manager "$KUBE_CONTROLLER_MANAGER" \
    --kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
    --controllers "$SMOLSTAGE_TEST_CONTROLLERS" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --use-service-account-credentials=false
  spawn kube-scheduler "$KUBE_SCHEDULER" \
    --kubeconfig "$kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$scheduler_port" --leader-elect=false
  # Kueue's setup (mostly applying its CRDs, a few seconds) runs while the others come up.
  local kueue_setup
  start_kueue "$KUEUE" "$KUEUE_SOURCE" "$python" "$kueue_webhook_port" "$kueue_metrics_port" "$kueue_health_port" &
  kueue_setup=$!
  wait_until kube-controller-manager 60 curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
  wait_until kube-scheduler 60 curl -fsSk "https://127.0.0.1:$scheduler_port/healthz"
  wait "$kueue_setup" || exit 1
  # readyz includes the webhook server; the Job webhook answering is what the tests need.
  wait_until kueue 60 curl -fsS "http://127.0.0.1:$kueue_health_port/readyz"

  wait_until s3 60 curl -fsS "http://127.0.0.1:$s3_port/"

  cat >"$state/env" <<ENV
export SMOLSTAGE_TEST_KUBECONFIG=$state/kubeconfig
export SMOLSTAGE_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export SMOLSTAGE_TEST_S3_ACCESS_KEY=smolstage-test
export SMOLSTAGE_TEST_S3_SECRET_KEY=smolstage-test-secret
export SMOLSTAGE_TEST_S3_REGION=us-east-1
export SMOLSTAGE_TEST_CONTROLLERS=$SMOLSTAGE_TEST_CONTROLLERS
export SMOLSTAGE_KUBECTL=$KUBECTL
export SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL=$SMOLSTAGE_TEST_KUEUE_NAMESPACE_LABEL
ENV
}

# True while pid runs (a zombie, left when nothing reaps it here, counts as ended).
running() {
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# stop_one NAME: TERM the server's session, wait up to 10s, then KILL it.
stop_one() {
  local pidfile=$state/pids/$1 pid i
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  # Each server leads its own session (setsid), so -pid ends it and any children.
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    running "$pid" || break
    sleep 0.25
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

stop() {
  # The controllers, then the apiserver: it shuts down in about a second, but waits on etcd if
  # etcd goes first.
  stop_one kueue
  stop_one kube-scheduler
  stop_one kube-controller-manager
  stop_one kube-apiserver
  stop_one etcd
  stop_one s3
}

cmd=${1:-}
state=${2:-}
[ -n "$cmd" ] && [ -n "$state" ] || die "usage: servers.sh start|stop STATE_DIR"
case $cmd in
start) start ;;
stop) stop ;;
*) die "unknown command '$cmd' (expected start or stop)" ;;
esac
