#!/usr/bin/env bash
# Runs the bench command's fit suite (issue 11) side by side: the driver as
# it is in this tree, and the driver of 29be03b, the code before the
# budget's eviction rules were fixed. Both binaries are built from the same
# bench sources (this tree's internal/cmd/bench and internal/benchkit); the
# old one with the rest of the module as it was at 29be03b, since its
# driver/ does not build against today's store package. They alternate on
# one private server (scripts/bench-postgres.sh, port 5447), stopped at the
# end.
#
#   internal/cmd/bench/fit-side-by-side.sh [bench flags...]
#
# ROUNDS (default 1) is how many times each binary runs, in alternating
# order (old, new, then new, old, ...). OLD (default 29be03b) is the commit
# to compare with. Extra arguments go to both binaries, e.g.
# -duration 3s -fit-warmup-cap 10s -fit-tenants 40.
set -euo pipefail

root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$root"
old=${OLD:-29be03b}
rounds=${ROUNDS:-1}
port=5447

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tenantsql-fit.XXXXXX")
cleanup() {
	scripts/bench-postgres.sh stop "$port" || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building the bench with this tree's driver" >&2
go build -o "$tmp/bench-new" ./internal/cmd/bench
echo "building the bench with the driver of $old" >&2
mkdir "$tmp/old"
git archive "$old" | tar -x -C "$tmp/old"
rm -f "$tmp/old/internal/cmd/bench/"*.go "$tmp/old/internal/benchkit/"*.go
mkdir -p "$tmp/old/internal/cmd/bench" "$tmp/old/internal/benchkit"
cp internal/cmd/bench/*.go "$tmp/old/internal/cmd/bench/"
cp internal/benchkit/*.go "$tmp/old/internal/benchkit/"
(cd "$tmp/old" && go build -o "$tmp/bench-old" ./internal/cmd/bench)

url=$(scripts/bench-postgres.sh start "$port" 1000)
echo "private server: $url" >&2

order=(old new)
for ((r = 1; r <= rounds; r++)); do
	for which in "${order[@]}"; do
		label=$which
		[[ $which == old ]] && label="old ($old)"
		echo "== round $r: $label" >&2
		"$tmp/bench-$which" -suite fit -url "$url" "$@" >"$tmp/$which-$r.txt"
		echo "== round $r: $label"
		cat "$tmp/$which-$r.txt"
	done
	order=("${order[1]}" "${order[0]}")
done
