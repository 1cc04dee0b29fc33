#!/usr/bin/env bash
# Ensure the PostgreSQL and Redis servers the tests run against are up,
# and that the pgbouncer, redis-sentinel and chromium programs are installed
# (see ensure_pgbouncer, ensure_redis_sentinel and ensure_chromium).
#
# For each service: if it answers, do nothing (never restart or reconfigure
# a running server, never touch pg_hba.conf); if it is installed but
# stopped, start it; if it is missing, install it with apt-get when running
# as root, otherwise explain what to install and fail. Prints one line per
# service and exits non-zero if any one could not be brought up.
#
# Optional environment (the defaults are what the tests expect):
#   TENANTSQL_PG_HOST, TENANTSQL_PG_PORT        default 127.0.0.1, 5432
#   TENANTSQL_REDIS_HOST, TENANTSQL_REDIS_PORT  default 127.0.0.1, 6379
#   TENANTSQL_SERVICES_WAIT  seconds to wait for a started server (30)
# These only change where this script looks and, for Redis, the port it
# starts on; point the tests elsewhere with TENANTSQL_TEST_POSTGRES_URL and
# TENANTSQL_TEST_REDIS_URL. Only a local host is ever started or installed.
set -euo pipefail

PG_HOST=${TENANTSQL_PG_HOST:-127.0.0.1}
PG_PORT=${TENANTSQL_PG_PORT:-5432}
REDIS_HOST=${TENANTSQL_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${TENANTSQL_REDIS_PORT:-6379}
WAIT=${TENANTSQL_SERVICES_WAIT:-30}

# pg_ctlcluster, runuser and redis-server may live in sbin directories that
# a non-login PATH lacks.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

LOG=$(mktemp "${TMPDIR:-/tmp}/tenantsql-services.XXXXXX")
trap 'rm -f "$LOG"' EXIT

say() { printf '%s\n' "$*"; }
err() { printf '%s\n' "$*" >&2; }

# fail prints a message, the captured output of the last command run through
# quiet (if any), and exits this (sub)shell.
fail() {
	err "$*"
	if [[ -s $LOG ]]; then
		sed 's/^/    /' "$LOG" >&2
	fi
	exit 1
}

# quiet runs a command with its output captured in $LOG (shown by fail) and
# stdin from /dev/null (it runs inside `while read` loops). It also closes
# the lock descriptor: the servers started through it run on as daemons and
# would otherwise hold the lock for as long as they live.
quiet() { "$@" </dev/null >"$LOG" 2>&1 9>&-; }

have() { command -v "$1" >/dev/null 2>&1; }

is_root() { [[ $(id -u) -eq 0 ]]; }

is_local() {
	case $1 in
	127.0.0.1 | localhost | ::1 | '[::1]') return 0 ;;
	*) return 1 ;;
	esac
}

# tcp_open reports whether something accepts TCP connections at host:port.
tcp_open() {
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
	timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# wait_until polls a check function until it succeeds or $WAIT seconds pass.
wait_until() {
	local deadline=$((SECONDS + WAIT))
	until "$@"; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 0.2
	done
}

# One script at a time may start or install anything (parallel `make`
# runs, apt's own lock). Taken only when something has to be done.
locked=0
take_lock() {
	if ((locked)) || ! have flock; then
		return 0
	fi
	# A lock file another user owns cannot be opened: go on unlocked.
	{ exec 9>"${TMPDIR:-/tmp}/tenantsql-services.lock"; } 2>/dev/null || return 0
	flock -w 300 9 || fail "services: could not take ${TMPDIR:-/tmp}/tenantsql-services.lock"
	locked=1
}

apt_install() {
	local pkg=$1
	export DEBIAN_FRONTEND=noninteractive
	if quiet apt-get install -y --no-install-recommends "$pkg"; then
		return 0
	fi
	quiet apt-get update || return 1
	quiet apt-get install -y --no-install-recommends "$pkg"
}

# ---------------------------------------------------------------- PostgreSQL

# pg_state prints ready, starting (answers but rejects connections: starting
# up, shutting down, recovering) or down.
pg_state() {
	local out
	if have pg_isready; then
		out=$(pg_isready -h "$PG_HOST" -p "$PG_PORT" -t 2 2>&1) || true
		case $out in
		*"accepting connections"*) echo ready; return ;;
		*"rejecting connections"*) echo starting; return ;;
		*"no response"*) echo down; return ;;
		esac
		# Anything else is a broken pg_isready (pg_wrapper without a client
		# package, ...): fall back to the TCP probe.
	fi
	if tcp_open "$PG_HOST" "$PG_PORT"; then echo ready; else echo down; fi
}

# shellcheck disable=SC2317 # called through wait_until
pg_ready() { [[ $(pg_state) == ready ]]; }

pg_server_installed() {
	have pg_ctlcluster && have pg_lsclusters && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# pg_clusters prints "version name port status" for every cluster under
# /etc/postgresql (none when the directory is missing).
pg_clusters() {
	[[ -d /etc/postgresql ]] || return 0
	pg_lsclusters -h 2>/dev/null | awk '$1 ~ /^[0-9.]+$/ { print $1, $2, $3, $4 }'
}

pg_set_password() {
	local sql="ALTER ROLE postgres PASSWORD 'postgres'"
	cd / # psql as postgres may not be able to read the caller's directory
	if have runuser; then
		quiet runuser -u postgres -- psql -X -q -p "$PG_PORT" -d postgres -c "$sql"
	else
		quiet su postgres -c "psql -X -q -p $PG_PORT -d postgres -c \"$sql\""
	fi
}

ensure_postgres() {
	local state installed=0 created="" ver name port status
	local started=() online=()
	state=$(pg_state)
	if [[ $state == ready ]]; then
		say "postgresql: running"
		return 0
	fi
	if ! is_local "$PG_HOST"; then
		fail "postgresql: nothing answers on $PG_HOST:$PG_PORT, and only a local server can be started"
	fi
	take_lock
	state=$(pg_state) # someone else may have started it meanwhile
	if [[ $state == ready ]]; then
		say "postgresql: running"
		return 0
	fi
	if [[ $state == starting ]]; then
		wait_until pg_ready ||
			fail "postgresql: $PG_HOST:$PG_PORT answers but did not accept connections within ${WAIT}s"
		say "postgresql: running (waited for it to accept connections)"
		return 0
	fi

	if ! pg_server_installed; then
		if ! is_root; then
			err "postgresql: not running on $PG_HOST:$PG_PORT and the server is not installed."
			err "    Install it as root:  apt-get install postgresql   (or run this script as root),"
			err "    or point the tests at a server with TENANTSQL_TEST_POSTGRES_URL."
			exit 1
		fi
		apt_install postgresql || fail "postgresql: apt-get install postgresql failed:"
		: >"$LOG" # apt succeeded: its output is not the problem
		pg_server_installed || fail "postgresql: installed, but no server binaries or pg_ctlcluster were found"
		installed=1
	fi

	if [[ -z $(pg_clusters) ]]; then
		# No cluster at all (the package's own cluster creation was disabled,
		# or /etc/postgresql is missing): create main for the newest version.
		ver=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' |
			awk -F/ '{ print $5 }' | sort -V | tail -n 1)
		[[ -n $ver ]] || fail "postgresql: no server version found under /usr/lib/postgresql"
		quiet pg_createcluster -p "$PG_PORT" "$ver" main ||
			fail "postgresql: pg_createcluster -p $PG_PORT $ver main failed:"
		created="$ver/main"
	fi

	# Start the cluster(s) configured for our port; clusters of other
	# versions on other ports are none of our business.
	while read -r ver name port status; do
		[[ $port == "$PG_PORT" ]] || continue
		if [[ $status != down ]]; then
			online+=("$ver/$name")
			continue
		fi
		if ! quiet pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start; then
			# A concurrent start from outside this script is fine.
			if [[ $(pg_state) == down ]] || ! wait_until pg_ready; then
				fail "postgresql: pg_ctlcluster --skip-systemctl-redirect $ver $name start failed (log: /var/log/postgresql/postgresql-$ver-$name.log):"
			fi
		fi
		started+=("$ver/$name")
	done < <(pg_clusters)

	if ((${#started[@]} == 0)); then
		if ((${#online[@]} > 0)); then
			# Started by someone else since the first probe, e.g. by the
			# package's postinst when no policy-rc.d blocks it.
			if ! pg_ready; then
				fail "postgresql: cluster ${online[*]} is online but does not answer on $PG_HOST:$PG_PORT (listen_addresses?); not reconfiguring it"
			fi
			started=("${online[@]}")
		else
			fail "postgresql: no cluster under /etc/postgresql uses port $PG_PORT (clusters: $(pg_clusters | awk '{ printf "%s/%s:%s ", $1, $2, $3 }'))"
		fi
	fi
	wait_until pg_ready ||
		fail "postgresql: started ${started[*]}, but $PG_HOST:$PG_PORT did not accept connections within ${WAIT}s (see /var/log/postgresql/)"

	if ((installed)) || [[ -n $created ]]; then
		# A fresh Debian cluster authenticates TCP connections with a
		# password: give the postgres role the one the tests use.
		(pg_set_password) || fail "postgresql: could not set the postgres role's password:"
	fi

	if ((installed)); then
		say "postgresql: installed and started"
	elif [[ -n $created ]]; then
		say "postgresql: created cluster $created and started"
	else
		say "postgresql: started (cluster ${started[*]})"
	fi
}

# --------------------------------------------------------------------- Redis

redis_ready() {
	if have redis-cli; then
		# PONG, or an answer such as NOAUTH/LOADING: something is serving.
		local out
		out=$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>&1) || true
		case $out in
		PONG) return 0 ;;
		*"Could not connect"* | *"Connection refused"* | "") return 1 ;;
		esac
	fi
	tcp_open "$REDIS_HOST" "$REDIS_PORT"
}

redis_start() {
	mkdir -p /var/lib/redis /var/log/redis ||
		fail "redis: cannot create /var/lib/redis and /var/log/redis (run as root)"
	quiet redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" \
		--save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log ||
		fail "redis: redis-server failed to start:"
	wait_until redis_ready ||
		fail "redis: started, but $REDIS_HOST:$REDIS_PORT did not answer within ${WAIT}s (see /var/log/redis/ci.log)"
}

ensure_redis() {
	if redis_ready; then
		say "redis: running"
		return 0
	fi
	if ! is_local "$REDIS_HOST"; then
		fail "redis: nothing answers on $REDIS_HOST:$REDIS_PORT, and only a local server can be started"
	fi
	take_lock
	if redis_ready; then
		say "redis: running (started concurrently)"
		return 0
	fi
	if have redis-server; then
		redis_start
		say "redis: started"
		return 0
	fi
	if ! is_root; then
		err "redis: not running on $REDIS_HOST:$REDIS_PORT and redis-server is not installed."
		err "    Install it as root:  apt-get install redis-server   (or run this script as root),"
		err "    or point the tests at a server with TENANTSQL_TEST_REDIS_URL."
		exit 1
	fi
	apt_install redis-server || fail "redis: apt-get install redis-server failed:"
	: >"$LOG" # apt succeeded: its output is not the problem
	have redis-server || fail "redis: installed, but redis-server is not on PATH"
	# The package's own init script is normally blocked in containers
	# (policy-rc.d); if it did start a server, leave that one alone.
	if ! redis_ready; then
		redis_start
	fi
	say "redis: installed and started"
}

# ----------------------------------------------------------------- PgBouncer

# Only installed here, never started: each test binary that needs it starts
# a private one in transaction mode (internal/testenv, PgBouncer), and
# scripts/pgbouncer.sh starts one by hand. The package's own service is
# left alone. Without it, the tests behind PgBouncer skip locally and fail
# under CI, so a missing program that cannot be installed fails here too
# when CI is set.
ensure_pgbouncer() {
	if have pgbouncer; then
		say "pgbouncer: installed (the tests start their own)"
		return 0
	fi
	if ! is_root; then
		err "pgbouncer: not installed; the tests behind PgBouncer will skip (or fail under CI)."
		err "    Install it as root:  apt-get install pgbouncer   (or run this script as root)."
		[[ -z ${CI:-} ]] || exit 1
		return 0
	fi
	take_lock
	if ! have pgbouncer; then
		apt_install pgbouncer || fail "pgbouncer: apt-get install pgbouncer failed:"
		: >"$LOG"
	fi
	have pgbouncer || fail "pgbouncer: installed, but no pgbouncer on PATH"
	say "pgbouncer: installed (the tests start their own)"
}

# ------------------------------------------------------------ Redis Sentinel

# The store's tests on a Sentinel-managed primary and replica (store,
# internal/testenv StartRedisSentinel) start a private Sentinel, and a
# private primary and replica, on free ports. Only installed here, never
# started: the package's service is kept from starting at install (a
# policy-rc.d that refuses, unless one is there already) and left alone.
# The tests fall back to redis-server --sentinel, the same program, but CI
# installs the package they document.
ensure_redis_sentinel() {
	if have redis-sentinel; then
		say "redis-sentinel: installed (the tests start their own)"
		return 0
	fi
	if ! is_root; then
		err "redis-sentinel: not installed; the tests on Sentinel use redis-server --sentinel (and fail under CI)."
		err "    Install it as root:  apt-get install redis-sentinel   (or run this script as root)."
		[[ -z ${CI:-} ]] || exit 1
		return 0
	fi
	take_lock
	if ! have redis-sentinel; then
		local policy=/usr/sbin/policy-rc.d made=
		if [[ ! -e $policy ]]; then
			printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made=1
		fi
		local st=0
		apt_install redis-sentinel || st=$?
		[[ -z $made ]] || rm -f "$policy"
		((st == 0)) || fail "redis-sentinel: apt-get install redis-sentinel failed:"
		: >"$LOG"
	fi
	have redis-sentinel || fail "redis-sentinel: installed, but no redis-sentinel on PATH"
	say "redis-sentinel: installed (the tests start their own)"
}

# ------------------------------------------------------------------ Chromium

# The browser tests of the operator's page (examples/hospital/ui_test.go)
# drive a headless Chromium. Only installed here, never started: each test
# starts its own. chromium-driver (ChromeDriver) comes with it for those
# who drive the page through WebDriver instead of the DevTools protocol.
ensure_chromium() {
	if have chromium; then
		say "chromium: installed (the browser tests start their own)"
		return 0
	fi
	if ! is_root; then
		err "chromium: not installed; the browser tests of the operator's page will skip (or fail under CI)."
		err "    Install it as root:  apt-get install chromium chromium-driver   (or run this script as root),"
		err "    or point the tests at a Chrome binary with TENANTSQL_CHROMIUM."
		[[ -z ${CI:-} ]] || exit 1
		return 0
	fi
	take_lock
	if ! have chromium; then
		apt_install chromium || fail "chromium: apt-get install chromium failed:"
		apt_install chromium-driver || fail "chromium: apt-get install chromium-driver failed:"
		: >"$LOG"
	fi
	have chromium || fail "chromium: installed, but no chromium on PATH"
	say "chromium: installed (the browser tests start their own)"
}

# ---------------------------------------------------------------------- main

# Each service runs in a subshell with errexit in force (not in a condition
# context, where bash would ignore it), so a failure of one is reported and
# the other is still seen to.
rc=0
set +e
(
	set -e
	ensure_postgres
)
((rc |= $?))
(
	set -e
	ensure_redis
)
((rc |= $?))
(
	set -e
	ensure_pgbouncer
)
((rc |= $?))
(
	set -e
	ensure_redis_sentinel
)
((rc |= $?))
(
	set -e
	ensure_chromium
)
((rc |= $?))
set -e
exit "$rc"
