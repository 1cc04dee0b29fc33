#!/usr/bin/env bash
# A private PgBouncer in transaction mode, in front of a PostgreSQL server,
# for trying tenantsql behind a transaction pooler by hand (issue 13, point
# 4). The test suite starts its own the same way (internal/testenv,
# PgBouncer), one per test binary; this script is for everything else.
#
#   scripts/pgbouncer.sh start PORT [UPSTREAM_HOST UPSTREAM_PORT]   prints its URL
#   scripts/pgbouncer.sh stop PORT
#   scripts/pgbouncer.sh install      installs the pgbouncer package if missing
#
# The URL is for pgx (default_query_exec_mode is pgx's, see below); for
# psql, drop that parameter: psql "postgres://postgres@127.0.0.1:PORT/DB",
# or database pgbouncer for the admin console.
#
# start installs the Debian package `pgbouncer` when it is missing and this
# runs as root (otherwise it says what to install and fails), then runs a
# pgbouncer of its own: configuration, log and pid file in
# ${TMPDIR:-/tmp}/tenantsql-pgbouncer-PORT, listening on 127.0.0.1:PORT only,
# run as the postgres user when started as root (pgbouncer refuses to run
# as root). It never uses, starts or stops the package's own service
# (/etc/pgbouncer, port 6432). A second start on the same port restarts
# the instance. stop stops it and removes its directory.
#
# The instance (its settings are in internal/testenv/pgbouncer.ini, which the
# test suite's PgBouncer reads too):
#   - pool_mode = transaction: a server connection is lent to a client for
#     one transaction only, as in most production setups;
#   - default_pool_size = 4: few server connections per database and user,
#     so that clients really do share them; max_client_conn = 200;
#   - a wildcard database, `* = host=UPSTREAM port=UPSTREAM_PORT`: a client
#     asking for database D gets D on the upstream server, so tenants keep
#     their database names and only the host and port of their URL change;
#   - auth_type = trust, the user postgres (the upstream's login; the upstream
#     on 127.0.0.1:5432 trusts it; PGPASSWORD, when set, is what pgbouncer
#     gives the upstream if it asks for a password); postgres is also the admin
#     user of the console, database `pgbouncer` (SHOW POOLS, SHOW CLIENTS);
#   - ignore_startup_parameters = extra_float_digits. pgx sends as startup
#     parameters only user, database and the URL's query parameters that
#     are not its own settings. PgBouncer 1.18 accepts client_encoding,
#     DateStyle, TimeZone, standard_conforming_strings and application_name
#     and refuses any other with "unsupported startup parameter". On purpose
#     search_path, options and custom settings (app.tenant_id) are NOT on
#     the ignore list: ignoring them would quietly run a tenant's queries
#     without its settings (in `public`, say), and a refused connection is
#     better. Tenant settings must reach the session in-band, not as
#     startup parameters.
#
# The URL it prints ends in default_query_exec_mode=exec. PgBouncer before
# 1.21 does not track protocol-level prepared statements in transaction
# mode: a statement pgx prepared on one server connection is missing on the
# next one ("prepared statement stmtcache_... does not exist"), so pgx's
# default mode, cache_statement, fails behind it. Of the modes that use no
# named statements:
#   - exec (chosen): the unnamed statement, parse, bind and execute in one
#     round trip and one Sync, so PgBouncer keeps it on one server
#     connection; nothing is cached on the client, so it stays right when
#     a schema changes or the session's search_path differs from the one a
#     description was cached under (tenants at different schema versions);
#     parameters go as text, typed from their Go values;
#   - cache_describe: also one round trip, but caches each statement's
#     parameter and result types per client connection and assumes they
#     never change; behind a pooler the client's connection has no stable
#     server session, and a migration or another tenant's schema makes the
#     cached description wrong;
#   - simple_protocol: the query with its parameters interpolated on the
#     client; pgx's docs advise exec over it whenever possible.
set -euo pipefail

cmd=${1:-}
port=${2:-}
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

dir=${TMPDIR:-/tmp}/tenantsql-pgbouncer-$port
ini=$dir/pgbouncer.ini
pidfile=$dir/pgbouncer.pid
log=$dir/pgbouncer.log
user=postgres
# The settings shared with the test suite's PgBouncer, in one file.
common=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/internal/testenv/pgbouncer.ini
wait_secs=${TENANTSQL_SERVICES_WAIT:-30}

err() { printf 'pgbouncer: %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [[ $(id -u) -eq 0 ]]; }

usage() {
	echo "usage: $0 start PORT [UPSTREAM_HOST UPSTREAM_PORT] | stop PORT | install" >&2
	exit 2
}

check_port() {
	[[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || usage
}

# install_pgbouncer installs the package when it is missing: as root with
# apt-get (under the lock scripts/services.sh takes, so that parallel runs
# do not fight over apt), otherwise it says what to do and fails.
install_pgbouncer() {
	have pgbouncer && return 0
	if ! is_root; then
		err "the pgbouncer program is not installed."
		err "    Install it as root:  apt-get install pgbouncer   (or run this script, or make test, as root)."
		return 1
	fi
	local out
	out=$(mktemp "${TMPDIR:-/tmp}/tenantsql-pgbouncer-apt.XXXXXX")
	(
		if have flock; then
			exec 9>"${TMPDIR:-/tmp}/tenantsql-services.lock"
			flock -w 300 9 || true
		fi
		have pgbouncer && exit 0 # installed meanwhile
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y --no-install-recommends pgbouncer >"$out" 2>&1 ||
			{ apt-get update >>"$out" 2>&1 && apt-get install -y --no-install-recommends pgbouncer >>"$out" 2>&1; }
	) || {
		err "apt-get install pgbouncer failed:"
		sed 's/^/    /' "$out" >&2
		rm -f "$out"
		return 1
	}
	rm -f "$out"
	# The package's postinst may have started its own service (when no
	# policy-rc.d blocks it): that one is left alone.
	have pgbouncer || { err "installed, but no pgbouncer on PATH"; return 1; }
}

# our_pid prints the pid of this port's pgbouncer if it is running.
our_pid() {
	local pid
	[[ -f $pidfile ]] || return 1
	pid=$(cat "$pidfile" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	# A stale pid file may name a pid since reused by another program.
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == pgbouncer ]] && alive "$pid" || return 1
	echo "$pid"
}

# alive reports whether a process runs (a zombie, dead but not yet reaped
# by whoever inherited the daemon, does not).
alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

stop_instance() {
	local pid i
	if pid=$(our_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
}

# answers reports whether our instance's admin console answers.
answers() {
	if have psql; then
		PGCONNECT_TIMEOUT=2 psql -X -q -At -h 127.0.0.1 -p "$port" -U "$user" -d pgbouncer \
			-c 'SHOW VERSION' </dev/null 2>/dev/null | grep -q PgBouncer
	else
		# shellcheck disable=SC2016 # $1 belongs to the inner bash
		timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$port" >/dev/null 2>&1
	fi
}

write_config() {
	local up_host=$1 up_port=$2 pw=${PGPASSWORD:-}
	{
		echo "; written by scripts/pgbouncer.sh; see there for why each setting"
		echo "[databases]"
		echo "* = host=$up_host port=$up_port"
		echo
		echo "[pgbouncer]"
		cat "$common"
		echo "listen_port = $port"
		echo "logfile = $log"
		echo "pidfile = $pidfile"
		echo "auth_file = $dir/userlist.txt"
		echo "admin_users = $user"
		echo "stats_users = $user"
	} >"$ini"
	# auth_type trust still needs the user in auth_file.
	printf '"%s" "%s"\n' "$user" "${pw//\"/\"\"}" >"$dir/userlist.txt"
	chmod 600 "$dir/userlist.txt"
}

case $cmd in
start)
	check_port
	up_host=${3:-127.0.0.1}
	up_port=${4:-5432}
	install_pgbouncer
	stop_instance
	rm -rf "$dir"
	mkdir -p "$dir"
	chmod 700 "$dir"
	write_config "$up_host" "$up_port"
	if is_root; then
		id "$user" >/dev/null 2>&1 ||
			{ err "pgbouncer refuses to run as root, and there is no $user user to run it as"; exit 1; }
		chown -R "$user:" "$dir"
		runuser -u "$user" -- pgbouncer -q -d "$ini" </dev/null >"$dir/start.out" 2>&1 ||
			{ err "pgbouncer did not start:"; cat "$dir/start.out" "$log" >&2 2>/dev/null; exit 1; }
	else
		pgbouncer -q -d "$ini" </dev/null >"$dir/start.out" 2>&1 ||
			{ err "pgbouncer did not start:"; cat "$dir/start.out" "$log" >&2 2>/dev/null; exit 1; }
	fi
	started=$SECONDS
	until answers; do
		gone=0
		if ! our_pid >/dev/null && ((SECONDS - started >= 2)); then
			gone=1 # the daemon died, or never wrote its pid file
		fi
		if ((gone || SECONDS - started >= wait_secs)); then
			err "started, but 127.0.0.1:$port did not answer (log $log):"
			tail -n 20 "$log" >&2 2>/dev/null || true
			stop_instance
			exit 1
		fi
		sleep 0.1
	done
	echo "postgres://$user@127.0.0.1:$port/postgres?sslmode=disable&default_query_exec_mode=exec"
	;;
stop)
	check_port
	stop_instance
	rm -rf "$dir"
	;;
install)
	install_pgbouncer
	;;
*)
	usage
	;;
esac
