#!/usr/bin/env bash
# A local sagachain testnet: N validators as processes on 127.0.0.1, or with
# --docker as containers on a private Docker network, one host each.
#
#   scripts/testnet.sh up [--validators N] [--dir DIR] [--base-port P] [--docker]
#   scripts/testnet.sh status|logs [NODE]|down [--dir DIR] [--docker]
#
# The homes live in DIR (default ./.testnet); `down` stops the nodes and
# keeps DIR, so `up` on an existing DIR restarts the same chain.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { sed -n '2,9p' "$0" >&2; exit 2; }

cmd=${1:-}; shift || true
n=4 dir=.testnet base=26600 docker=false node=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--validators | --dir | --base-port) [[ $# -ge 2 ]] || usage ;;&
	--validators) n=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--base-port) base=$2; shift 2 ;;
	--docker) docker=true; shift ;;
	-*) usage ;;
	*) node=$1; shift ;;
	esac
done
bin=$dir/bin/sagachain
# The same names as testnet/docker/docker-compose.yml, so either can stop
# what the other started.
net=sagachain-testnet
image=sagachain:testnet
subnet=10.77.0.0/24
rpc_port=26600 # every container serves RPC here, and p2p on the next port

die() { echo "testnet.sh: $*" >&2; exit 1; }

build() {
	mkdir -p "$dir/bin"
	CGO_ENABLED=0 go build -o "$bin" ./cmd/sagachain
}

host_ip() { echo "10.77.0.$((10 + $1))"; }

homes() {
	local h
	for h in "$dir"/node*; do [[ -f $h/genesis.json ]] && echo "$h"; done
	return 0
}

# layout prints "docker" or "process": what testnet init made DIR for.
layout() {
	if grep -q '0\.0\.0\.0' "$dir/node0/config.yaml"; then echo docker; else echo process; fi
}

# check_layout refuses a DIR made for the other kind of testnet.
check_layout() {
	[[ -f $dir/node0/config.yaml ]] || return 0
	local want=process
	$docker && want=docker
	[[ $(layout) == "$want" ]] || die "$dir holds a $(layout) testnet; use another --dir, or $([[ $want == docker ]] && echo "drop --docker" || echo "add --docker")"
}

# head_of prints the head height the node at URL reports, or nothing.
head_of() {
	[[ -x $bin ]] || return 0
	"$bin" chain head --rpc "$1" 2>/dev/null | sed -n 's/^height *//p' || true
}

# wait_rpc waits (30s at most) until the node at URL answers.
wait_rpc() {
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -n $(head_of "$1") ]] && return 0
		sleep 0.1
	done
	echo "testnet.sh: $1 does not answer after 30s" >&2
}

process_rpc() { echo "http://$(sed -n 's/^rpc: {listen: "\(.*\)"}/\1/p' "$1/config.yaml")"; }

# pid_of prints the pid of the node of home $1 if it runs.
pid_of() {
	local pidfile=$1/pid pid
	[[ -f $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null && [[ $(ps -p "$pid" -o comm= 2>/dev/null) == sagachain* ]]; then
		echo "$pid"
	fi
}

up_processes() {
	build
	if [[ ! -d $dir/node0 ]]; then
		"$bin" testnet init --validators "$n" --dir "$dir" --base-port "$base" >/dev/null
	fi
	local home
	for home in $(homes); do
		[[ -n $(pid_of "$home") ]] && continue
		nohup "$bin" node --home "$home" >>"$home/node.log" 2>&1 &
		echo $! >"$home/pid"
	done
	for home in $(homes); do wait_rpc "$(process_rpc "$home")"; done
	status_processes
}

down_processes() {
	local home pid i
	for home in $(homes); do
		pid=$(pid_of "$home")
		if [[ -n $pid ]]; then
			kill "$pid"
			i=0
			while kill -0 "$pid" 2>/dev/null; do
				((++i <= 300)) || die "$(basename "$home") (pid $pid) did not stop within 30s of SIGTERM"
				sleep 0.1
			done
		fi
		rm -f "$home/pid"
	done
}

status_processes() {
	local home state pid url
	for home in $(homes); do
		pid=$(pid_of "$home")
		state=stopped
		[[ -n $pid ]] && state="running (pid $pid)"
		url=$(process_rpc "$home")
		printf '%s  %s  rpc %s  height %s\n' "$(basename "$home")" "$state" "$url" "$(head_of "$url")"
	done
}

container() { echo "sagachain-$(basename "$1")"; }

up_docker() {
	build
	local ctx
	ctx=$(mktemp -d)
	cp "$bin" testnet/docker/Dockerfile "$ctx"/
	local out
	# The legacy builder warns on stderr that it is deprecated: show its
	# output only when the build fails.
	if ! out=$(docker build -q -t "$image" "$ctx" 2>&1); then
		rm -rf "$ctx"
		die "docker build: $out"
	fi
	rm -rf "$ctx"
	docker network inspect "$net" >/dev/null 2>&1 ||
		docker network create --internal --subnet "$subnet" "$net" >/dev/null
	if [[ ! -d $dir/node0 ]]; then
		local hosts=() i
		for ((i = 0; i < n; i++)); do hosts+=("$(host_ip "$i")"); done
		"$bin" testnet init --validators "$n" --dir "$dir" --base-port "$rpc_port" --hosts "$(IFS=,; echo "${hosts[*]}")" >/dev/null
	fi
	local home name i=0
	for home in $(homes); do
		name=$(container "$home")
		if ! docker inspect "$name" >/dev/null 2>&1; then
			docker run -d --name "$name" --network "$net" --ip "$(host_ip "$i")" --user "$(id -u):$(id -g)" \
				-v "$(realpath "$home"):/home/node" "$image" node --home /home/node >/dev/null
		else
			docker start "$name" >/dev/null
		fi
		i=$((i + 1))
	done
	i=0
	for home in $(homes); do
		wait_rpc "http://$(host_ip "$i"):$rpc_port"
		i=$((i + 1))
	done
	status_docker
}

down_docker() {
	docker ps -aq --filter name=sagachain-node | xargs -r docker rm -f >/dev/null
	docker network rm "$net" >/dev/null 2>&1 || true
}

status_docker() {
	local home name state url height i=0
	for home in $(homes); do
		name=$(container "$home")
		state=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null) || state=absent
		url="http://$(host_ip "$i"):$rpc_port"
		height=""
		[[ $state == running ]] && height=$(head_of "$url")
		printf '%s  %s  rpc %s  height %s\n' "$name" "$state" "$url" "$height"
		i=$((i + 1))
	done
}

logs() {
	local name=${node:-node0}
	[[ -f $dir/$name/genesis.json ]] || die "no node $name in $dir"
	if $docker; then docker logs "sagachain-$name"; else cat "$dir/$name/node.log"; fi
}

case $cmd in
up | down | status | logs) check_layout ;;
*) usage ;;
esac
case $cmd in
up) if $docker; then up_docker; else up_processes; fi ;;
down) if $docker; then down_docker; else down_processes; fi ;;
status) if $docker; then status_docker; else status_processes; fi ;;
logs) logs ;;
esac
