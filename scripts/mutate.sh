#!/usr/bin/env bash
# mutate.sh: break critical lines on purpose, one at a time, and check that
# the tests notice (make mutate). Each record in scripts/mutations/*.mut
# names a file, the exact original text (it must occur exactly once: a
# stale record fails loudly), its replacement, the packages whose tests to
# run and optionally a -run regexp:
#
#	# why the line matters (comment lines start with '#')
#	file: driver/conn.go
#	pkg: ./driver
#	run: ^TestBind
#	timeout: 2m   (optional: go test -timeout for this one, instead of MUTATE_TIMEOUT)
#	--- original
#			case id != vc.id:
#	--- replacement
#			case false:
#
# The text blocks run to the next "--- " line or the end of the file; their
# final newline is not part of the text. The mutations are applied to a
# temporary copy of the tree (the working tree, uncommitted changes
# included), never to the working tree itself, and the copy is removed on
# exit or Ctrl-C. For each package and -run pair, the unmutated tests are
# run once first: a baseline that fails (or a server that is missing: CI=1
# is set, so a missing server fails instead of skipping) is reported, and
# no mutation of it counts as caught.
#
# Environment: MUTATE (a regexp: only mutations whose name matches),
# MUTATE_FLAGS (extra go test flags, e.g. -race or -v), MUTATE_TIMEOUT (go
# test -timeout per run, default 5m; a run that hits it counts as caught,
# reported as "caught by timeout"), MUTATE_BASELINE=0 (skip the baselines),
# MUTATE_ALL_TESTS=1 (ignore the run: lines and run every test of the
# packages: to confirm a survivor), MUTATE_LOGS=DIR (keep the go test
# output of each run there; otherwise it goes with the copy), GO (the go command). Exit status: 0
# when every mutation was caught, 1 when any survived or a baseline
# failed, 2 for a bad or stale record.
set -u -o pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/scripts/mutations"
GO=${GO:-go}
timeout_go=${MUTATE_TIMEOUT:-5m}
filter=${MUTATE:-}
flags=${MUTATE_FLAGS:-}

# field FILE KEY prints the value of header line "KEY: value".
field() {
	sed -n '/^--- /q; s/^'"$2"': *//p' "$1" | head -n 1
}

# mutate MUTFILE TREE [check] replaces the original text by the replacement
# in TREE/file, or with "check" only verifies that it occurs exactly once.
mutate() {
	perl -e '
		my ($mut, $tree, $check) = @ARGV;
		open(my $m, "<", $mut) or die "$mut: $!\n";
		my ($file, $block, %text) = ("", "");
		while (my $l = <$m>) {
			if ($l =~ /^--- (original|replacement)\s*$/) { $block = $1; $text{$block} = ""; next; }
			if ($block ne "") { $text{$block} .= $l; next; }
			$file = $1 if $l =~ /^file:\s*(\S+)/;
		}
		for my $b ("original", "replacement") {
			die "$mut: no \"--- $b\" block\n" unless defined $text{$b};
			$text{$b} =~ s/\n\z//;
		}
		die "$mut: no file: line\n" if $file eq "";
		die "$mut: the original text is empty\n" if $text{original} eq "";
		die "$mut: the replacement is the original\n" if $text{original} eq $text{replacement};
		my $path = "$tree/$file";
		open(my $f, "<", $path) or die "$mut: $file: $!\n";
		local $/; my $src = <$f>; close $f;
		my ($n, $at, $pos) = (0, -1, 0);
		while ((my $i = index($src, $text{original}, $pos)) >= 0) { $n++; $at = $i; $pos = $i + 1; }
		die "$mut: the original text occurs $n times in $file, not once: the record is stale (the code changed) or ambiguous\n" if $n != 1;
		exit 0 if $check;
		substr($src, $at, length($text{original})) = $text{replacement};
		open(my $o, ">", $path) or die "$path: $!\n";
		print $o $src; close $o or die "$path: $!\n";
	' "$@"
}

shopt -s nullglob
muts=()
for m in "$dir"/*.mut; do
	name=$(basename "$m" .mut)
	if [ -n "$filter" ] && ! [[ $name =~ $filter ]]; then
		continue
	fi
	muts+=("$m")
done
if [ ${#muts[@]} -eq 0 ]; then
	echo "mutate: no mutation in $dir matches MUTATE='$filter'" >&2
	exit 2
fi

# Check every record against the working tree before running anything.
bad=0
for m in "${muts[@]}"; do
	if [ -z "$(field "$m" pkg)" ]; then
		echo "$m: no pkg: line" >&2
		bad=1
	fi
	mutate "$m" "$root" check || bad=1
done
if [ $bad -ne 0 ]; then
	echo "mutate: fix the records above first" >&2
	exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tenantsql-mutate.XXXXXX")
cleanup() {
	if [ -n "${MUTATE_LOGS:-}" ] && [ -d "$tmp/logs" ]; then
		mkdir -p "$MUTATE_LOGS" && cp -r "$tmp/logs/." "$MUTATE_LOGS/"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; echo "mutate: interrupted" >&2; exit 130' INT TERM
tree="$tmp/tree"
logs="$tmp/logs"
mkdir -p "$tree" "$logs"
# The working tree as it is (tracked and untracked, not ignored files).
(cd "$root" && git ls-files -z --cached --others --exclude-standard | perl -0 -ne 'chomp; print "$_\0" if -e $_' | tar --null -T - -cf -) | tar -C "$tree" -xf - || {
	echo "mutate: cannot copy the tree to $tree" >&2
	exit 2
}

export CI=${CI:-1}
# gotest LOG PKGS RUN runs the tests in the copy; it prints caught, survived,
# timeout or broken.
gotest() {
	local log=$1 pkgs=$2 run=$3 to=${4:-$timeout_go} args=()
	[ -n "$run" ] && args+=(-run "$run")
	# A hard stop a minute after go test's own timeout, in case the build
	# or a child process hangs. --foreground keeps go test in the
	# terminal's process group, so that Ctrl-C reaches it at once.
	(cd "$tree" && timeout --foreground --kill-after=30s "$(( $(dur "$to") + 60 ))" \
		$GO test -count=1 -timeout "$to" "${args[@]}" $flags $pkgs) >"$log" 2>&1
	local rc=$?
	if grep -q -e '\[build failed\]' -e '\[setup failed\]' -e '^# ' "$log" && ! grep -q -e '^--- FAIL' -e '^ok ' "$log"; then
		echo broken
	elif grep -q -e '^panic: test timed out' "$log" || [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		echo timeout
	elif [ $rc -ne 0 ] && grep -q -e '^--- FAIL' -e '^panic:' "$log"; then
		echo caught
	elif [ $rc -ne 0 ]; then
		# No test failed: the run itself did (a shell error, a server out
		# of connections, a cleanup): that proves nothing about the
		# mutation.
		echo error
	elif grep -q -e 'no tests to run' "$log"; then
		echo "no tests to run"
	else
		echo survived
	fi
}

# dur prints a go duration (90s, 5m, 1h) in seconds.
dur() {
	case $1 in
	*[!0-9]*[hms] | [hms]) echo "mutate: timeout $1: want whole seconds, minutes or hours (90s, 5m, 1h)" >&2; exit 2 ;;
	*h) echo $(( ${1%h} * 3600 )) ;;
	*m) echo $(( ${1%m} * 60 )) ;;
	*[0-9]s) echo "${1%s}" ;;
	*) echo "mutate: timeout $1: want whole seconds, minutes or hours (90s, 5m, 1h)" >&2; exit 2 ;;
	esac
}

# failed LOG lists the top-level tests that failed.
failed() {
	grep -o -E '^--- FAIL: [^ ]+' "$1" | sed 's/^--- FAIL: //' | sort -u | tr '\n' ' ' | sed 's/ $//'
}

declare -A base=()
nbase=0
status=0
survivors=()
others=()
start=$(date +%s)
for m in "${muts[@]}"; do
	name=$(basename "$m" .mut)
	file=$(field "$m" file)
	pkgs=$(field "$m" pkg)
	run=$(field "$m" run)
	[ "${MUTATE_ALL_TESTS:-0}" = 1 ] && run=
	to=$(field "$m" timeout)
	to=${to:-$timeout_go}
	key="$pkgs|$run"
	if [ "${MUTATE_BASELINE:-1}" != 0 ] && [ -z "${base[$key]:-}" ]; then
		nbase=$((nbase + 1))
		blog="$logs/baseline-$nbase.log"
		r=$(gotest "$blog" "$pkgs" "$run" "$to")
		base[$key]=$r
		if [ "$r" != survived ]; then
			echo "BASELINE FAILS ($r) for $pkgs ${run:+-run '$run'}: the unmutated tests fail, so its mutations prove nothing:" >&2
			tail -n 30 "$blog" >&2
			status=1
		fi
	fi
	if [ "${base[$key]:-survived}" != survived ]; then
		printf '%-36s SKIPPED (baseline fails)\n' "$name"
		others+=("$name")
		continue
	fi
	cp "$tree/$file" "$tmp/orig"
	mutate "$m" "$tree" || { status=2; continue; }
	t0=$(date +%s)
	log="$logs/$name.log"
	r=$(gotest "$log" "$pkgs" "$run" "$to")
	cp "$tmp/orig" "$tree/$file"
	secs=$(( $(date +%s) - t0 ))
	case $r in
	caught) printf '%-36s caught by %s (%ds)\n' "$name" "$(failed "$log")" "$secs" ;;
	timeout) printf '%-36s caught by timeout (%s): %s\n' "$name" "$to" "$(sed -n '/running tests:/,/^$/{/running tests:/d;p;}' "$log" | tr -s ' \t\n' ' ')" ;;
	broken)
		printf '%-36s BROKEN: the mutated code does not build:\n' "$name"
		sed -n '1,10p' "$log"
		others+=("$name")
		status=1
		;;
	error)
		printf '%-36s ERROR: the tests did not run to a verdict (no test failed); see %s:\n' "$name" "$log"
		tail -n 10 "$log"
		others+=("$name")
		status=1
		;;
	"no tests to run")
		printf '%-36s NO TESTS RUN: the run: regexp matches no test in %s\n' "$name" "$pkgs"
		others+=("$name")
		status=1
		;;
	survived)
		printf '%-36s SURVIVED (%ds): %s %s %s\n' "$name" "$secs" "$file" "$pkgs" "${run:+-run '$run'}"
		survivors+=("$name")
		status=1
		;;
	esac
done
echo "mutate: ${#muts[@]} mutations in $(( $(date +%s) - start ))s; ${#survivors[@]} survived${survivors:+: ${survivors[*]}}${others:+; broken or not run: ${others[*]}}"
exit $status
