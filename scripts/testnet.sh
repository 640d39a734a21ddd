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

cmd=${1:-}; shift || true
n=4 dir=.testnet base=26600 docker=false node=""
while [[ $# -gt 0 ]]; do
	case $1 in
	--validators) n=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--base-port) base=$2; shift 2 ;;
	--docker) docker=true; shift ;;
	*) node=$1; shift ;;
	esac
done
bin=$dir/bin/sagachain
net=sagachain-testnet
subnet=10.77.0.0/24

build() {
	mkdir -p "$dir/bin"
	CGO_ENABLED=0 go build -o "$bin" ./cmd/sagachain
}

host_ip() { echo "10.77.0.$((10 + $1))"; }

up_processes() {
	build
	if [[ ! -d $dir/node0 ]]; then
		"$bin" testnet init --validators "$n" --dir "$dir" --base-port "$base" >/dev/null
	fi
	for home in "$dir"/node*; do
		[[ -f $home/pid ]] && kill -0 "$(cat "$home/pid")" 2>/dev/null && continue
		nohup "$bin" node --home "$home" >"$home/node.log" 2>&1 &
		echo $! >"$home/pid"
	done
	status_processes
}

down_processes() {
	for home in "$dir"/node*; do
		[[ -f $home/pid ]] || continue
		kill "$(cat "$home/pid")" 2>/dev/null || true
		rm -f "$home/pid"
	done
}

status_processes() {
	for home in "$dir"/node*; do
		local state=stopped
		[[ -f $home/pid ]] && kill -0 "$(cat "$home/pid")" 2>/dev/null && state="running (pid $(cat "$home/pid"))"
		local rpc
		rpc=$(sed -n 's/^rpc: {listen: "\(.*\)"}/\1/p' "$home/config.yaml")
		local head
		head=$("$bin" chain head --rpc "http://$rpc" 2>/dev/null | head -n 1 || true)
		printf '%s  %s  rpc http://%s  %s\n' "$(basename "$home")" "$state" "$rpc" "${head:-}"
	done
}

up_docker() {
	build
	cp "$bin" testnet/docker/sagachain
	docker build -q -t sagachain:testnet testnet/docker >/dev/null
	rm -f testnet/docker/sagachain
	docker network inspect "$net" >/dev/null 2>&1 || docker network create --internal --subnet "$subnet" "$net" >/dev/null
	if [[ ! -d $dir/node0 ]]; then
		local hosts=()
		for ((i = 0; i < n; i++)); do hosts+=("$(host_ip "$i")"); done
		"$bin" testnet init --validators "$n" --dir "$dir" --base-port 26656 --hosts "$(IFS=,; echo "${hosts[*]}")" >/dev/null
	fi
	local i=0
	for home in "$dir"/node*; do
		local name
		name=sagachain-$(basename "$home")
		if ! docker inspect "$name" >/dev/null 2>&1; then
			docker run -d --name "$name" --network "$net" --ip "$(host_ip "$i")" \
				-v "$(realpath "$home"):/home/node" sagachain:testnet node --home /home/node >/dev/null
		else
			docker start "$name" >/dev/null
		fi
		i=$((i + 1))
	done
	docker ps --filter name=sagachain-node --format '{{.Names}}  {{.Status}}'
}

down_docker() {
	docker ps -aq --filter name=sagachain-node | xargs -r docker rm -f >/dev/null
	docker network rm "$net" >/dev/null 2>&1 || true
}

case $cmd in
up) if $docker; then up_docker; else up_processes; fi ;;
down) if $docker; then down_docker; else down_processes; fi ;;
status) if $docker; then docker ps -a --filter name=sagachain-node --format '{{.Names}}  {{.Status}}'; else status_processes; fi ;;
logs)
	if $docker; then docker logs "sagachain-${node:-node0}"; else cat "$dir/${node:-node0}/node.log"; fi ;;
*) sed -n '2,9p' "$0"; exit 2 ;;
esac
