#!/usr/bin/env bash
# A private Redis Cluster, or a primary and replica behind a Sentinel, on
# local ports, for trying the Redis store on them by hand (issue 18,
# point 2). The test suite starts its own the same way (internal/testenv,
# StartRedisCluster and StartRedisSentinel), one per test; this script is
# for everything else.
#
#   scripts/redis-topology.sh cluster start PORT    3 masters with a replica each, on PORT..PORT+5
#   scripts/redis-topology.sh sentinel start PORT   primary on PORT, replica on PORT+1, Sentinel on PORT+2
#   scripts/redis-topology.sh cluster|sentinel stop PORT
#
# start prints the store's URL (tenantsql's -store flag, sql.Open's DSN).
# Every server listens on 127.0.0.1 only, without persistence, its
# configuration, log and pid file in ${TMPDIR:-/tmp}/tenantsql-redis-KIND-PORT;
# the cluster nodes take a silent peer to be down after 1 s, and the Sentinel
# a silent primary after 1 s (quorum 1), so a killed master or primary is
# replaced within a few seconds. A second start on the same port restarts
# the set, empty. stop kills the servers it started (by their pid files)
# and removes the directory. Programs: redis-server and redis-cli (Debian
# redis-server), redis-sentinel (Debian redis-sentinel; without it,
# redis-server --sentinel, the same program). scripts/services.sh installs
# them as root.
set -euo pipefail

kind=${1:-}
cmd=${2:-}
port=${3:-}
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
wait_secs=${TENANTSQL_SERVICES_WAIT:-30}

usage() {
	echo "usage: $0 cluster|sentinel start|stop PORT" >&2
	exit 2
}
[[ $kind == cluster || $kind == sentinel ]] || usage
[[ $cmd == start || $cmd == stop ]] || usage
[[ $port =~ ^[0-9]+$ ]] && ((port >= 1024 && port <= 65530)) || usage

dir=${TMPDIR:-/tmp}/tenantsql-redis-$kind-$port

fail() {
	echo "redis-topology: $*" >&2
	exit 1
}

stop() {
	local pf pid
	for pf in "$dir"/*/redis.pid; do
		[[ -e $pf ]] || continue
		pid=$(cat "$pf" 2>/dev/null) || continue
		kill "$pid" 2>/dev/null || true
	done
	for pf in "$dir"/*/redis.pid; do
		[[ -e $pf ]] || continue
		pid=$(cat "$pf" 2>/dev/null) || continue
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	done
	rm -rf "$dir"
}

# server PORT [ARGS...] starts a redis-server in a directory of its own.
server() {
	local p=$1 d=$dir/$1
	shift
	mkdir -p "$d"
	redis-server --port "$p" --bind 127.0.0.1 --dir "$d" --save "" --appendonly no \
		--daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" "$@" ||
		fail "redis-server on port $p did not start (see $d/redis.log)"
}

# until WHAT CMD... runs CMD until it succeeds, for wait_secs at most.
until_ok() {
	local what=$1
	shift
	for _ in $(seq $((wait_secs * 10))); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	fail "$what: not within ${wait_secs}s (logs in $dir)"
}

answers() { [[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]; }

cluster_ok() {
	local p
	for p in $(seq "$port" $((port + 5))); do
		redis-cli -h 127.0.0.1 -p "$p" cluster info | grep -q '^cluster_state:ok' || return 1
		redis-cli -h 127.0.0.1 -p "$p" cluster info | grep -q '^cluster_known_nodes:6' || return 1
	done
}

sentinel_knows_replica() {
	redis-cli -h 127.0.0.1 -p $((port + 2)) sentinel replicas tenantsql | grep -qx 'slave'
}

for prog in redis-server redis-cli; do
	command -v "$prog" >/dev/null ||
		fail "no $prog: install the Debian package redis-server (scripts/services.sh does as root)"
done

stop
[[ $cmd == stop ]] && exit 0

mkdir -p "$dir"
case $kind in
cluster)
	addrs=()
	for p in $(seq "$port" $((port + 5))); do
		server "$p" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000
		addrs+=("127.0.0.1:$p")
	done
	for p in $(seq "$port" $((port + 5))); do
		until_ok "redis-server on port $p to answer" answers "$p"
	done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 ||
		fail "redis-cli --cluster create failed (see $dir/create.log)"
	until_ok "the cluster to be ok on its 6 nodes" cluster_ok
	url="redis://127.0.0.1:$port"
	sep='?'
	for a in "${addrs[@]:1}"; do
		url+="${sep}addr=$a"
		sep='&'
	done
	echo "$url"
	;;
sentinel)
	sentinel=(redis-sentinel)
	command -v redis-sentinel >/dev/null || sentinel=(redis-server)
	server "$port"
	server $((port + 1)) --replicaof 127.0.0.1 "$port"
	sp=$((port + 2))
	mkdir -p "$dir/$sp"
	cat >"$dir/$sp/sentinel.conf" <<-EOF
		port $sp
		bind 127.0.0.1
		dir $dir/$sp
		daemonize yes
		pidfile $dir/$sp/redis.pid
		logfile $dir/$sp/redis.log
		sentinel monitor tenantsql 127.0.0.1 $port 1
		sentinel down-after-milliseconds tenantsql 1000
		sentinel failover-timeout tenantsql 10000
	EOF
	if [[ ${sentinel[0]} == redis-server ]]; then
		redis-server "$dir/$sp/sentinel.conf" --sentinel
	else
		redis-sentinel "$dir/$sp/sentinel.conf"
	fi
	until_ok "the Sentinel to know the replica" sentinel_knows_replica
	echo "redis://127.0.0.1:$sp/0?master_name=tenantsql"
	;;
esac
