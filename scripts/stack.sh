#!/usr/bin/env bash
# Local stack for development and CI: PostgreSQL, PgBouncer in transaction mode
# in front of it, Redis, a 3-master Redis Cluster (PgBouncer and the cluster
# for the tests that run both ways) and a single-node Apache Kafka 4.x broker
# (KRaft, broker+controller in one JVM).
#
#   scripts/stack.sh up       start what is not running, create STACK_TOPICS (idempotent)
#   scripts/stack.sh down     stop Kafka and whatever this script started
#   scripts/stack.sh status   one line per service; exit 0 only if all are up
#
# PostgreSQL/Redis: anything already listening on 127.0.0.1:5432/6379 is used
# as is and never stopped. Kafka jars come from Maven Central through
# stack/kafka/pom.xml (copied to .cache/kafka/libs when missing or stale).
#
# Environment:
#   KAFKA_PORT             broker port (9092); controller uses KAFKA_CONTROLLER_PORT (KAFKA_PORT+1)
#   STACK_DIR              state, logs, pid files, Kafka data (.cache/stack)
#   STACK_TOPICS           topics to create, "name:partitions" separated by spaces or commas
#                          (the service's own: `node dist/main.js topics`, which `npm start` runs)
#   KAFKA_HEAP_OPTS        JVM heap for the broker (-Xms256m -Xmx512m)
#   KAFKA_READY_TIMEOUT    seconds to wait for the broker to answer (60)
#   PG_PORT / REDIS_PORT   5432 / 6379
#   PGBOUNCER_PORT         6432 (every database of PG_PORT, transaction pooling, no password)
#   REDIS_CLUSTER_PORTS    the cluster's masters (7101 7102 7103), separated by spaces or commas
#
# Files: $STACK_DIR/kafka.log (broker log; previous run in kafka.log.1),
#        $STACK_DIR/kafka.pid, $STACK_DIR/kafka-data/, $STACK_DIR/*.started markers,
#        $STACK_DIR/redis-cluster/<port>/ (nodes.conf, redis.log, redis.pid),
#        $STACK_DIR/pgbouncer/ (pgbouncer.ini, pgbouncer.log, pgbouncer.pid).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

STACK_DIR=${STACK_DIR:-.cache/stack}
case $STACK_DIR in /*) ;; *) STACK_DIR=$ROOT/$STACK_DIR ;; esac
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
KAFKA_READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-60}
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-6432}
read -r -a REDIS_CLUSTER_PORTS <<<"${REDIS_CLUSTER_PORTS:-7101 7102 7103}"
read -r -a REDIS_CLUSTER_PORTS <<<"${REDIS_CLUSTER_PORTS[*]//,/ }"
HOST=127.0.0.1

KAFKA_POM=$ROOT/stack/kafka/pom.xml
KAFKA_HELPER_SRC=$ROOT/stack/kafka/StackAdmin.java
KAFKA_LIBS=$ROOT/.cache/kafka/libs
KAFKA_HELPER_DIR=$ROOT/.cache/kafka/helper
# Fixed cluster id (a base64 UUID), so formatting is reproducible.
KAFKA_CLUSTER_ID=cmVjc3lzLWxvY2FsLWthZg

KAFKA_DATA=$STACK_DIR/kafka-data
KAFKA_PROPS=$STACK_DIR/kafka.properties
KAFKA_LOG=$STACK_DIR/kafka.log
KAFKA_PID=$STACK_DIR/kafka.pid
KAFKA_TOPICS_OK=$STACK_DIR/kafka-topics.ok
LOG4J_BROKER=$STACK_DIR/log4j2-broker.properties
LOG4J_TOOLS=$STACK_DIR/log4j2-tools.properties

TOPICS=()
if [[ -n ${STACK_TOPICS:-} ]]; then
  read -r -a _extra <<<"${STACK_TOPICS//,/ }"
  TOPICS+=("${_extra[@]}")
fi

log() { printf '%s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# True if something accepts TCP connections on HOST:$1.
listening() { timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null; }

# pid from file $1 if that process is alive and its command line contains $2.
live_pid() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  printf '%s' "$pid"
}

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
  if [[ $APT_UPDATED -eq 0 ]]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

wait_port() { # port seconds
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    listening "$1" && return 0
    sleep 0.25
  done
  return 1
}

# ---------------------------------------------------------------- PostgreSQL
pg_cluster() { ls /etc/postgresql 2>/dev/null | sort -V | tail -1; }

pg_up() {
  if listening "$PG_PORT"; then
    log "postgres: up   $HOST:$PG_PORT"
    return
  fi
  if ! command -v pg_ctlcluster >/dev/null || [[ -z $(pg_cluster) ]]; then
    log "postgres: installing postgresql (apt-get)"
    apt_install postgresql
    # A fresh Debian cluster asks for passwords over TCP; the project expects
    # trust auth on loopback (as on the dev/CI machines).
    local hba=/etc/postgresql/$(pg_cluster)/main/pg_hba.conf
    if [[ -f $hba ]]; then
      as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    fi
  fi
  local ver
  ver=$(pg_cluster)
  [[ -n $ver ]] || die "postgres: no cluster under /etc/postgresql"
  log "postgres: starting cluster $ver/main"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  touch "$STACK_DIR/postgres.started"
  wait_port "$PG_PORT" 30 || die "postgres: not listening on $HOST:$PG_PORT after 30s"
  log "postgres: up   $HOST:$PG_PORT (started)"
}

pg_down() {
  [[ -f $STACK_DIR/postgres.started ]] || return 0
  local ver
  ver=$(pg_cluster)
  log "postgres: stopping cluster $ver/main (started by stack.sh)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main stop || true
  rm -f "$STACK_DIR/postgres.started"
}

# ----------------------------------------------------------------- PgBouncer
# Transaction pooling in front of every database of the local PostgreSQL, for
# the tests that run the service through a pooler (PG_POOLER=transaction).
PGBOUNCER_DIR=$STACK_DIR/pgbouncer

# A setting of the PgBouncer on PGBOUNCER_PORT, from its admin console; empty when it cannot tell.
pgbouncer_setting() {
  PGCONNECT_TIMEOUT=3 timeout 5 psql -h "$HOST" -p "$PGBOUNCER_PORT" -U postgres -d pgbouncer -Atc 'SHOW CONFIG' 2>/dev/null \
    | awk -F'|' -v key="$1" '$1 == key { print $2 }'
}

pgbouncer_up() {
  local pid user=()
  if pid=$(live_pid "$PGBOUNCER_DIR/pgbouncer.pid" "$PGBOUNCER_DIR/pgbouncer.ini"); then
    log "pgbouncer: up   $HOST:$PGBOUNCER_PORT (pid $pid)"
    return
  fi
  if listening "$PGBOUNCER_PORT"; then
    # Like Kafka: another checkout's PgBouncer serves as well; anything else would fail the tests
    # far from the cause.
    [[ $(pgbouncer_setting pool_mode) == transaction && $(pgbouncer_setting auth_type) == any ]] \
      || die "pgbouncer: $HOST:$PGBOUNCER_PORT is taken by something that is not a transaction-mode PgBouncer with auth_type any (set PGBOUNCER_PORT)"
    log "pgbouncer: a transaction-mode PgBouncer already listens on $HOST:$PGBOUNCER_PORT (not started by this checkout); using it"
    return
  fi
  if ! command -v pgbouncer >/dev/null; then
    log "pgbouncer: installing pgbouncer (apt-get)"
    apt_install pgbouncer
  fi
  mkdir -p "$PGBOUNCER_DIR"
  # No password, as PostgreSQL has it on loopback: `any` logs every client in as postgres. The
  # config is read before PgBouncer drops root; nothing else of its own is a file (the checkout
  # may sit where the postgres user cannot reach).
  write_if_changed "$PGBOUNCER_DIR/pgbouncer.ini" "; Written by scripts/stack.sh; edits are overwritten.
[databases]
* = host=$HOST port=$PG_PORT user=postgres

[pgbouncer]
listen_addr = $HOST
listen_port = $PGBOUNCER_PORT
unix_socket_dir =
auth_type = any
admin_users = postgres
pool_mode = transaction
default_pool_size = 20
max_client_conn = 900"
  # PgBouncer refuses to run as root: as root it drops to the postgres user.
  if [[ $(id -u) -eq 0 ]]; then
    user=(-u "$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)")
  fi
  log "pgbouncer: starting (log: ${PGBOUNCER_DIR#"$ROOT"/}/pgbouncer.log)"
  # The child writes its own pid, then execs PgBouncer (same pid, own session), as for Kafka.
  # shellcheck disable=SC2016
  nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PGBOUNCER_DIR/pgbouncer.pid" \
    pgbouncer "${user[@]}" "$PGBOUNCER_DIR/pgbouncer.ini" \
    >"$PGBOUNCER_DIR/pgbouncer.log" 2>&1 </dev/null &
  wait_port "$PGBOUNCER_PORT" 15 || die "pgbouncer: not listening on $HOST:$PGBOUNCER_PORT after 15s (see ${PGBOUNCER_DIR#"$ROOT"/}/pgbouncer.log)"
  log "pgbouncer: up   $HOST:$PGBOUNCER_PORT (started)"
}

pgbouncer_down() {
  local pid
  if pid=$(live_pid "$PGBOUNCER_DIR/pgbouncer.pid" "$PGBOUNCER_DIR/pgbouncer.ini"); then
    log "pgbouncer: stopping pid $pid"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$PGBOUNCER_DIR/pgbouncer.pid"
}

# --------------------------------------------------------------------- Redis
redis_up() {
  if listening "$REDIS_PORT"; then
    log "redis:    up   $HOST:$REDIS_PORT"
    return
  fi
  if ! command -v redis-server >/dev/null; then
    log "redis:    installing redis-server (apt-get)"
    apt_install redis-server
  fi
  mkdir -p "$STACK_DIR/redis"
  log "redis:    starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir "$STACK_DIR/redis" \
    --logfile "$STACK_DIR/redis.log" --pidfile "$STACK_DIR/redis.pid"
  touch "$STACK_DIR/redis.started"
  wait_port "$REDIS_PORT" 15 || die "redis: not listening on $HOST:$REDIS_PORT after 15s (see $STACK_DIR/redis.log)"
  log "redis:    up   $HOST:$REDIS_PORT (started)"
}

redis_down() {
  [[ -f $STACK_DIR/redis.started ]] || return 0
  local pid
  if pid=$(live_pid "$STACK_DIR/redis.pid" redis-server); then
    log "redis:    stopping pid $pid (started by stack.sh)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$STACK_DIR/redis.started" "$STACK_DIR/redis.pid"
}

# ------------------------------------------------------------- Redis Cluster
# Masters only (no replicas), data in memory; nodes.conf keeps the slot map, so
# nodes restarted together form the same cluster again.
redis_cluster_info() { redis-cli -h "$HOST" -p "$1" cluster info 2>/dev/null | tr -d '\r'; }

redis_cluster_up() {
  local port dir pid started=0 nodes=() info
  command -v redis-server >/dev/null || apt_install redis-server
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do
    dir=$STACK_DIR/redis-cluster/$port
    nodes+=("$HOST:$port")
    if pid=$(live_pid "$dir/redis.pid" "redis-server $HOST:$port"); then continue; fi
    # Like Kafka: a cluster node another checkout started is used as it is.
    if listening "$port"; then
      [[ $(redis_cluster_info "$port") == *cluster_state:* ]] \
        || die "redis-cluster: $HOST:$port is taken by something that is not a Redis Cluster node (set REDIS_CLUSTER_PORTS)"
      log "redis-cluster: a node already listens on $HOST:$port (not started by this checkout); using it"
      continue
    fi
    mkdir -p "$dir"
    redis-server --daemonize yes --bind "$HOST" --port "$port" \
      --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" --cluster-node-timeout 5000 \
      --save "" --appendonly no --dir "$dir" \
      --logfile "$dir/redis.log" --pidfile "$dir/redis.pid"
    started=1
  done
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do
    wait_port "$port" 15 || die "redis-cluster: not listening on $HOST:$port after 15s (see ${STACK_DIR#"$ROOT"/}/redis-cluster/$port/redis.log)"
  done
  info=$(redis_cluster_info "${REDIS_CLUSTER_PORTS[0]}")
  if [[ $info == *cluster_slots_assigned:0* ]]; then
    log "redis-cluster: creating (${nodes[*]})"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$STACK_DIR/redis-cluster/create.log" 2>&1 \
      || die "redis-cluster: create failed (see ${STACK_DIR#"$ROOT"/}/redis-cluster/create.log)"
  fi
  for _ in $(seq 1 60); do
    [[ $(redis_cluster_info "${REDIS_CLUSTER_PORTS[0]}") == *cluster_state:ok* ]] && break
    sleep 0.25
  done
  [[ $(redis_cluster_info "${REDIS_CLUSTER_PORTS[0]}") == *cluster_state:ok* ]] \
    || die "redis-cluster: cluster_state not ok after 15s (scripts/stack.sh down, then up, starts it afresh)"
  log "redis-cluster: up   ${nodes[*]}$([[ $started -eq 1 ]] && echo ' (started)')"
}

redis_cluster_down() {
  local port dir pid
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do
    dir=$STACK_DIR/redis-cluster/$port
    if pid=$(live_pid "$dir/redis.pid" "redis-server $HOST:$port"); then
      log "redis-cluster: stopping pid $pid ($HOST:$port)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  # The data is not kept (no persistence): the next up creates the cluster afresh.
  rm -rf "$STACK_DIR/redis-cluster"
}

# --------------------------------------------------------------------- Kafka
kafka_libs() {
  local want have=""
  want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  [[ -f $KAFKA_LIBS/.pom.sha256 ]] && have=$(<"$KAFKA_LIBS/.pom.sha256")
  if [[ $want != "$have" ]] || ! compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    command -v mvn >/dev/null || die "kafka: mvn not found (needed once to fetch the Kafka jars)"
    log "kafka:    fetching jars (mvn dependency:copy-dependencies -> .cache/kafka/libs)"
    local tmp=$KAFKA_LIBS.tmp.$$
    rm -rf "$tmp"
    if ! mvn -B -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies \
      -DoutputDirectory="$tmp" >"$STACK_DIR/mvn.log" 2>&1; then
      rm -rf "$tmp"
      grep -E 'ERROR' "$STACK_DIR/mvn.log" | head -n 20 >&2 || true
      die "kafka: mvn could not fetch the jars (full output: ${STACK_DIR#"$ROOT"/}/mvn.log)"
    fi
    printf '%s\n' "$want" >"$tmp/.pom.sha256"
    rm -rf "$KAFKA_LIBS" "$KAFKA_HELPER_DIR"
    mv "$tmp" "$KAFKA_LIBS"
  fi
  if [[ ! -f $KAFKA_HELPER_DIR/StackAdmin.class || $KAFKA_HELPER_SRC -nt $KAFKA_HELPER_DIR/StackAdmin.class ]]; then
    mkdir -p "$KAFKA_HELPER_DIR"
    javac -nowarn -d "$KAFKA_HELPER_DIR" -cp "$KAFKA_LIBS/*" "$KAFKA_HELPER_SRC"
  fi
}

# Write $2 to file $1 only when it changed (keeps mtimes stable).
write_if_changed() {
  if [[ ! -f $1 ]] || [[ $(<"$1") != "$2" ]]; then printf '%s\n' "$2" >"$1"; fi
}

kafka_config() {
  write_if_changed "$KAFKA_PROPS" "# Written by scripts/stack.sh; edits are overwritten.
node.id=1
process.roles=broker,controller
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
log.dirs=$KAFKA_DATA
num.partitions=3
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1"

  write_if_changed "$LOG4J_BROKER" "status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN"

  write_if_changed "$LOG4J_TOOLS" "status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
logger.net.name = org.apache.kafka.clients.NetworkClient
logger.net.level = ERROR"
}

kafka_java() { # main-class args... (tools, not the broker)
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J_TOOLS" -cp "$KAFKA_LIBS/*:$KAFKA_HELPER_DIR" "$@"
}

kafka_log_tail() {
  [[ -f $KAFKA_LOG ]] || return 0
  printf -- '--- last lines of %s ---\n' "$KAFKA_LOG" >&2
  grep -vE '^\s' "$KAFKA_LOG" | tail -n 25 >&2 || true
}

kafka_up() {
  local pid topics_key external=0
  mkdir -p "$KAFKA_DATA"
  kafka_libs
  kafka_config
  topics_key="port=$KAFKA_PORT topics=${TOPICS[*]}"

  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_PROPS"); then
    # Fast path: our broker runs and already has the topics.
    if [[ -f $KAFKA_TOPICS_OK && $(<"$KAFKA_TOPICS_OK") == "pid=$pid $topics_key" ]] && listening "$KAFKA_PORT"; then
      log "kafka:    up   $HOST:$KAFKA_PORT (pid $pid)"
      return
    fi
  elif listening "$KAFKA_PORT"; then
    log "kafka:    something already listens on $HOST:$KAFKA_PORT (not started by stack.sh); using it"
    pid=-
    external=1
  else
    rm -f "$KAFKA_PID" "$KAFKA_TOPICS_OK"
    if listening "$KAFKA_CONTROLLER_PORT"; then
      die "kafka: controller port $HOST:$KAFKA_CONTROLLER_PORT is taken (set KAFKA_CONTROLLER_PORT)"
    fi
    if [[ ! -f $KAFKA_DATA/meta.properties ]]; then
      log "kafka:    formatting storage in ${KAFKA_DATA#"$ROOT"/}"
      kafka_java kafka.tools.StorageTool format --ignore-formatted \
        -t "$KAFKA_CLUSTER_ID" -c "$KAFKA_PROPS" >/dev/null \
        || die "kafka: formatting storage failed"
    fi
    [[ -f $KAFKA_LOG ]] && mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
    log "kafka:    starting broker (log: ${KAFKA_LOG#"$ROOT"/})"
    # The child writes its own pid, then execs java (same pid, own session).
    # shellcheck disable=SC2016,SC2086
    nohup setsid bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PID" \
      java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -Djava.awt.headless=true -Dlog4j2.configurationFile="$LOG4J_BROKER" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
      >"$KAFKA_LOG" 2>&1 </dev/null &
    for _ in $(seq 1 40); do [[ -s $KAFKA_PID ]] && break; sleep 0.05; done
    pid=$(<"$KAFKA_PID")
  fi

  # Wait until the broker answers admin requests, create missing topics, and (our broker) warm
  # its group coordinator and producer ids so that clients never meet a loading coordinator.
  local rc=0
  kafka_java StackAdmin "$HOST:$KAFKA_PORT" "$KAFKA_READY_TIMEOUT" "$pid" "${TOPICS[@]}" || rc=$?
  if [[ $rc -ne 0 ]]; then
    [[ $external -eq 1 ]] || kafka_log_tail
    case $rc in
      3) die "kafka: broker exited during startup (see ${KAFKA_LOG#"$ROOT"/})" ;;
      *) die "kafka: broker on $HOST:$KAFKA_PORT not ready within ${KAFKA_READY_TIMEOUT}s (see ${KAFKA_LOG#"$ROOT"/})" ;;
    esac
  fi
  [[ $external -eq 1 ]] || printf '%s\n' "pid=$pid $topics_key" >"$KAFKA_TOPICS_OK"
  [[ $external -eq 1 ]] && pid="external" || pid="pid $pid"
  log "kafka:    up   $HOST:$KAFKA_PORT ($pid)${TOPICS[*]:+ topics: ${TOPICS[*]}}"
}

kafka_down() {
  local pid
  rm -f "$KAFKA_TOPICS_OK"
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_PROPS"); then
    log "kafka:    stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
      log "kafka:    still running after 30s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    fi
  fi
  rm -f "$KAFKA_PID"
}

# -------------------------------------------------------------------- status
status_line() { # name port [note]
  if listening "$2"; then
    printf '%-9s up    %s:%s%s\n' "$1:" "$HOST" "$2" "${3:+ ($3)}"
    return 0
  fi
  printf '%-9s down  %s:%s\n' "$1:" "$HOST" "$2"
  return 1
}

cmd_status() {
  local ok=0 pid note=""
  status_line postgres "$PG_PORT" || ok=1
  status_line pgbouncer "$PGBOUNCER_PORT" || ok=1
  status_line redis "$REDIS_PORT" || ok=1
  local port
  for port in "${REDIS_CLUSTER_PORTS[@]}"; do status_line redis-cluster "$port" || ok=1; done
  if pid=$(live_pid "$KAFKA_PID" "$KAFKA_PROPS"); then note="pid $pid"; else note="not started by stack.sh"; fi
  status_line kafka "$KAFKA_PORT" "$note" || ok=1
  return $ok
}

case ${1:-} in
  up)
    mkdir -p "$STACK_DIR"
    pg_up
    pgbouncer_up
    redis_up
    redis_cluster_up
    kafka_up
    ;;
  down)
    mkdir -p "$STACK_DIR"
    kafka_down
    redis_cluster_down
    redis_down
    pgbouncer_down
    pg_down
    log "stack: down"
    ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
