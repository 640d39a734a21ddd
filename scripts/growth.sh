#!/usr/bin/env bash
# Store bytes and memory of `sagachain dev` as its chain and its operations
# grow (issue #12), for a given sagachain binary, so a "before" and an
# "after" binary are measured the same way.
#
#   scripts/growth.sh [--bin PATH] [--phases trip,steady,chain,wide] [--cap SECONDS]
#                     [--trip-ops N] [--counts 1000,10000,100000] [--stages 3000]
#                     [--wide STAGESxTASKS] [--port P] [--keep]
#
#   trip    N testnet/ops/trip.yaml submissions (16 at once, each --wait):
#           store bytes per completed operation, closed store minus the
#           closed empty store (the node stopped with SIGTERM, so badger has
#           flushed its memtable to tables), also live (running) du.
#   steady  `sagachain bench --scenario complete` (5 echo tasks, 3 stages)
#           against one dev node, in chunks, until each count of completed
#           operations: VmRSS, VmHWM and du of the data dir at each count.
#   chain   one operation of --stages tasks, each consuming the previous
#           task's output (so one task per stage): time to its final status,
#           store bytes, VmHWM.
#   wide    one operation of STAGES stages of TASKS tasks (task j of stage k
#           consumes task j of stage k-1): the same numbers.
#
# Each phase has a fresh dev node in a temporary home (and a temporary $HOME,
# so the client key is a new one and ~/.sagachain is not touched) and is cut
# off after --cap seconds (default 900), reporting how far it got. Every
# process it starts is stopped and the temporary homes deleted on exit,
# however it exits (--keep keeps them). Sizes are du -sk (blocks really
# written: badger preallocates sparse .vlog/.mem files of GBs), memory from
# /proc/PID/status. Rows go to stdout as a table; progress to stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

usage() { sed -n '2,30p' "$0" >&2; exit 2; }

bin=$repo/sagachain phases=trip,steady,chain,wide cap=900 trip_ops=200
counts=1000,10000,100000 stages=3000 wide=10x1000 port=18745 keep=false
while [[ $# -gt 0 ]]; do
	case $1 in
	--bin | --phases | --cap | --trip-ops | --counts | --stages | --wide | --port) [[ $# -ge 2 ]] || usage ;;&
	--bin) bin=$2; shift 2 ;;
	--phases) phases=$2; shift 2 ;;
	--cap) cap=$2; shift 2 ;;
	--trip-ops) trip_ops=$2; shift 2 ;;
	--counts) counts=$2; shift 2 ;;
	--stages) stages=$2; shift 2 ;;
	--wide) wide=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	--keep) keep=true; shift ;;
	*) usage ;;
	esac
done
bin=$(realpath "$bin")
[[ -x $bin ]] || { echo "growth.sh: $bin is not an executable" >&2; exit 2; }
# The completed trips are counted with one op list, which answers at most 1000.
((trip_ops >= 1 && trip_ops <= 1000)) || { echo "growth.sh: --trip-ops must be 1..1000" >&2; exit 2; }

root=$(mktemp -d /tmp/sagachain-growth.XXXXXX)
pid="" # the running dev node, if any
export SAGACHAIN_RPC=http://127.0.0.1:$port

cleanup() {
	local rc=$?
	stop_node || true
	if $keep; then echo "growth.sh: kept $root" >&2; else rm -rf "$root"; fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "growth.sh: $(date -u +%H:%M:%S) $*" >&2; }

# start_node starts (or restarts, keeping its chain) the dev node of phase
# $1 and waits for its RPC to answer.
start_node() {
	local d=$root/$1
	mkdir -p "$d/u"
	HOME=$d/u "$bin" dev --home "$d/dev" --no-demo --rpc "127.0.0.1:$port" >>"$d/node.log" 2>&1 &
	pid=$!
	local i
	for i in $(seq 120); do
		if HOME=$d/u "$bin" op list --limit 1 --json >/dev/null 2>&1; then return 0; fi
		kill -0 "$pid" 2>/dev/null || { tail -5 "$d/node.log" >&2; pid=""; return 1; }
		sleep 0.5
	done
	echo "growth.sh: the dev node of $1 did not answer within 60s" >&2
	return 1
}

# stop_node stops the running node with SIGTERM (a clean close, which
# flushes badger), SIGKILL after 120s.
stop_node() {
	[[ -n $pid ]] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	local i
	for i in $(seq 240); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
}

# mem prints "VmRSS VmHWM" of the running node in MB.
mem() {
	awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {printf "%.0f %.0f", r/1024, h/1024}' "/proc/$pid/status" 2>/dev/null || echo "? ?"
}

store_kb() { du -sk "$root/$1/dev/data" | cut -f1; }

height() {
	HOME=$root/$1/u timeout 30 "$bin" chain head --json 2>/dev/null | jq -r '.height // .header.height // "?"' 2>/dev/null || echo "?"
}

# row prints one line of the table.
row() { printf '%-7s %-22s %8s %8s %8s %8s %12s %12s %9s  %s\n' "$@"; }

header() {
	row phase point ops height rss_MB hwm_MB store_live_KB store_closed_KB seconds note
}

phase_trip() {
	local ph=trip d=$root/trip
	start_node $ph
	sleep 2
	local e_live e_h
	e_live=$(store_kb $ph) e_h=$(height $ph)
	stop_node
	local e_closed
	e_closed=$(store_kb $ph)
	row trip empty 0 "$e_h" - - "$e_live" "$e_closed" - "fresh node, stopped"

	start_node $ph
	local t0 t1 fails
	t0=$(date +%s.%N)
	# Each submit waits for its operation's end; xargs's exit says whether any did not complete.
	seq "$trip_ops" | timeout "$cap" xargs -P 16 -I{} env HOME="$d/u" "$bin" submit "$repo/testnet/ops/trip.yaml" --wait --json \
		>/dev/null 2>"$d/submit.err" || true
	t1=$(date +%s.%N)
	local done
	done=$(HOME=$d/u "$bin" op list --status completed --limit 1000 --json | jq length)
	local m live h
	m=$(mem) live=$(store_kb $ph) h=$(height $ph)
	stop_node
	local closed per_closed per_live
	closed=$(store_kb $ph)
	per_closed=$(((closed - e_closed) * 1024 / (done > 0 ? done : 1)))
	per_live=$(((live - e_live) * 1024 / (done > 0 ? done : 1)))
	# shellcheck disable=SC2086
	row trip "after $trip_ops submits" "$done" "$h" $m "$live" "$closed" "$(printf %.0f "$(echo "$t1 - $t0" | bc)")" \
		"completed=$done; bytes/op closed=$per_closed live=$per_live"
}

phase_steady() {
	local ph=steady d=$root/steady
	start_node $ph
	local t0 done=0 target chunk out n rc
	t0=$(date +%s)
	IFS=, read -ra targets <<<"$counts"
	for target in "${targets[@]}"; do
		while ((done < target)); do
			local left=$((cap - ($(date +%s) - t0)))
			if ((left <= 0)); then break; fi
			# bench runs 5 warm-up operations before the counted ones; they complete too.
			chunk=$((target - done - 5))
			((chunk > 5000)) && chunk=5000
			((chunk < 1)) && chunk=1
			rc=0
			out=$(HOME=$d/u timeout "$left" "$bin" bench --ops "$chunk" --concurrency 32 --scenario complete --json --lost-after 60s 2>>"$d/bench.err") || rc=$?
			if ((rc != 0)); then
				log "steady: bench exited $rc (cut off by the cap, or failed: $d/bench.err)"
				break
			fi
			n=$(jq '[.[].completed] | add' <<<"$out")
			done=$((done + n + 5))
			log "steady: $done completed ($(jq -r '.[0].ops_per_sec' <<<"$out") ops/s in the last chunk)"
		done
		local m
		m=$(mem)
		# shellcheck disable=SC2086
		row steady "$( ((done >= target)) && echo "at $target" || echo "cap ${cap}s before $target")" "$done" "$(height $ph)" $m \
			"$(store_kb $ph)" - "$(($(date +%s) - t0))" "live"
		((done >= target)) || break
	done
	local m h live
	m=$(mem) h=$(height $ph) live=$(store_kb $ph)
	stop_node
	# shellcheck disable=SC2086
	row steady closed "$done" "$h" $m "$live" "$(store_kb $ph)" "$(($(date +%s) - t0))" "after SIGTERM"
}

# big_op measures one generated operation file $2 in phase $1.
big_op() {
	local ph=$1 file=$2 d=$root/$1
	log "$ph: $(wc -c <"$file") bytes, $(grep -c '{id: ' "$file") tasks"
	HOME=$d/u "$bin" plan "$file" >/dev/null 2>"$d/plan.err" || { log "$ph: plan refused it: $(head -3 "$d/plan.err")"; }
	start_node "$ph"
	local e_live t0 rc=0
	e_live=$(store_kb "$ph")
	t0=$(date +%s.%N)
	# submit may say "not committed within 30s" (exit 1) although the node
	# commits it, so the operation is found by op list instead.
	HOME=$d/u timeout 120 "$bin" submit "$file" --json >"$d/submit.out" 2>"$d/submit.err" || rc=$?
	local id="" i
	for i in $(seq 120); do
		id=$(HOME=$d/u timeout 60 "$bin" op list --limit 1 --json 2>/dev/null | jq -r '.[0].id // empty' 2>/dev/null || true)
		[[ -n $id ]] && break
		sleep 1
	done
	local note="submit exit $rc"
	[[ $rc == 0 ]] || note="$note ($(head -c 80 "$d/submit.err" | tr '\n' ' '))"
	if [[ -z $id ]]; then
		row "$ph" "not recorded" 0 "$(height "$ph")" $(mem) "$(store_kb "$ph")" - - "$note"
		stop_node
		return
	fi
	local status=running el progress="" m
	while :; do
		el=$(echo "$(date +%s.%N) - $t0" | bc)
		if (($(printf %.0f "$el") >= cap)); then break; fi
		local j
		j=$(HOME=$d/u timeout 120 "$bin" op get "$id" --json 2>/dev/null || true)
		if [[ -n $j ]]; then
			status=$(jq -r .status <<<"$j")
			progress=$(jq -r '[.stages[] | select(.status == "succeeded")] | length' <<<"$j")
			log "$ph: $status, $progress stages succeeded, height $(height "$ph"), rss/hwm MB $(mem), store $(store_kb "$ph") KB"
			case $status in completed | rolled_back | rollback_failed) break ;; esac
		fi
		sleep 10
	done
	el=$(printf %.0f "$(echo "$(date +%s.%N) - $t0" | bc)")
	m=$(mem)
	local live h
	live=$(store_kb "$ph") h=$(height "$ph")
	stop_node
	local point="$status"
	case $status in completed | rolled_back | rollback_failed) ;; *) point="did not finish in ${cap}s" ;; esac
	# shellcheck disable=SC2086
	row "$ph" "$point" 1 "$h" $m "$live" "$(store_kb "$ph")" "$el" \
		"$note; $progress stages succeeded at the last poll; store minus empty: $((live - e_live)) KB live"
}

phase_chain() {
	local f=$root/chain.yaml i
	mkdir -p "$root/chain"
	{
		echo "name: chain-$stages"
		echo "timeout: 24h"
		echo "tasks:"
		echo "  - {id: t0, run: echo, rollback: noop, outputs: [o0]}"
		for ((i = 1; i < stages; i++)); do
			echo "  - {id: t$i, run: echo, rollback: noop, inputs: [o$((i - 1))], outputs: [o$i]}"
		done
	} >"$f"
	big_op chain "$f"
}

phase_wide() {
	local s=${wide%x*} t=${wide#*x} f=$root/wide.yaml k j
	mkdir -p "$root/wide"
	{
		echo "name: wide-${s}x$t"
		echo "timeout: 24h"
		echo "tasks:"
		for ((j = 0; j < t; j++)); do echo "  - {id: a0_$j, run: echo, rollback: noop, outputs: [o0_$j]}"; done
		for ((k = 1; k < s; k++)); do
			for ((j = 0; j < t; j++)); do
				echo "  - {id: a${k}_$j, run: echo, rollback: noop, inputs: [o$((k - 1))_$j], outputs: [o${k}_$j]}"
			done
		done
	} >"$f"
	big_op wide "$f"
}

log "binary $bin ($("$bin" version 2>/dev/null | head -1)), cap ${cap}s per phase, temp $root"
log "load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
header
IFS=, read -ra todo <<<"$phases"
for p in "${todo[@]}"; do
	case $p in
	trip | steady | chain | wide) log "phase $p"; "phase_$p"; rm -rf "${root:?}/$p" ;;
	*) echo "growth.sh: unknown phase $p" >&2; exit 2 ;;
	esac
done
# Times are only comparable between runs on an equally loaded machine.
log "done; load: $(cut -d' ' -f1-3 /proc/loadavg)"
