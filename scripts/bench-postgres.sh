#!/usr/bin/env bash
# A private PostgreSQL server for benchmarks, so that their figures do not
# depend on the settings of (or the other clients on) the shared server.
#
#   scripts/bench-postgres.sh start PORT MAX_CONNECTIONS   prints its URL
#   scripts/bench-postgres.sh stop PORT
#
# The cluster lives in ${TMPDIR:-/tmp}/tenantsql-bench-pg-PORT, is created
# with initdb (trust authentication, listening on 127.0.0.1 only) on first
# use, and is restarted with the given max_connections on every start.
# Needs the PostgreSQL server binaries (scripts/services.sh installs them);
# as root it runs the server as the postgres user.
set -euo pipefail

cmd=${1:-}
port=${2:-5433}
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [[ -z $bindir || ! -x $bindir/initdb ]]; then
	echo "bench-postgres: no PostgreSQL server binaries under /usr/lib/postgresql (run scripts/services.sh as root to install them)" >&2
	exit 1
fi
dir=${TMPDIR:-/tmp}/tenantsql-bench-pg-$port
data=$dir/data
log=$dir/server.log

as_owner() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

case $cmd in
start)
	maxconn=${3:-100}
	if [[ ! -f $data/PG_VERSION ]]; then
		mkdir -p "$dir"
		[[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
		as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust --no-sync >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	as_owner "$bindir/pg_ctl" -D "$data" stop -m fast >/dev/null 2>&1 || true
	as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start \
		-o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c max_connections=$maxconn" >/dev/null ||
		{ tail -n 20 "$log" >&2; exit 1; }
	echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	;;
stop)
	if [[ -f $data/PG_VERSION ]]; then
		as_owner "$bindir/pg_ctl" -D "$data" stop -m fast >/dev/null 2>&1 || true
	fi
	;;
*)
	echo "usage: $0 start PORT MAX_CONNECTIONS | stop PORT" >&2
	exit 2
	;;
esac
