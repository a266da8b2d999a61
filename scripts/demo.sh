#!/usr/bin/env bash
# The demo of what scangate does so far: build the vulnerability database
# from the bundled real feeds (no network), ask it what a scan asks, scan an
# image and gate it; then run the server: a push to its registry is scanned,
# the result is an event, and a database update re-evaluates the image
# without pulling it; then a pipeline: a git push is built on the Docker
# Engine, scanned and gated: rejected, then approved after a fix, and the
# approved image deployed as a new revision of a service's task definition,
# running and answering on its port.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/scangate
data=$(mktemp -d)
server_pid=
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
	rm -rf "$data"
}
trap cleanup EXIT
export SCANGATE_DATA_DIR="$data"
feeds=testdata/vulndata

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

step $bin version
step $bin db import $feeds/go-vulndb.zip $feeds/pypa-advisory-database.zip \
	$feeds/debian $feeds/alpine $feeds/ghsa $feeds/nvd
step $bin db status
# Debian bookworm's zlib, matched by source package: CRITICAL by NVD's CVSS.
step $bin db affected Debian:12 zlib 1:1.2.13.dfsg-1
step $bin db show CVE-2023-45853
# A Go module from an old build, and an npm package from a lockfile.
step $bin db affected Go golang.org/x/text v0.3.5
step $bin db affected npm minimist 1.2.0
step $bin db affected Alpine:v3.10 openssl 1.1.1c-r0
# Scan an image: Debian bookworm minbase with an npm app, built from the
# fixtures as a docker save archive. First the report, then the gate.
image="$data/app.tar"
go run ./scripts/demoimage "$image"
step $bin scan "docker-archive:$image"
set +e
step $bin scan --fail-on CRITICAL=0,HIGH=0 --format json --output "$data/report.json" "docker-archive:$image"
code=$?
set -e
echo "exit code $code (1: the policy failed); the JSON report is in report.json"
# Bad input loses nothing: a truncated zip fails the import with exit 2,
# and the database is as it was.
broken=$(mktemp --suffix=.zip)
head -c 200000 $feeds/go-vulndb.zip >"$broken"
set +e
step $bin db import "$broken"
code=$?
set -e
rm -f "$broken"
echo "exit code $code (2: bad input); the database is unchanged:"
$bin db status | tail -1

# The server. A data folder of its own, with Debian's and Go's feeds only,
# so that importing GitHub's advisories later changes the results.
printf '\n\033[1m--- scangate server ---\033[0m\n'
export SCANGATE_DATA_DIR="$data/server"
step $bin db import $feeds/debian $feeds/go-vulndb.zip
token=$($bin token create --name demo --role pusher)
echo "token create --name demo --role pusher: $token"
$bin server --addr 127.0.0.1:0 2>"$data/server.log" &
server_pid=$!
addr=
for _ in $(seq 1 100); do
	addr=$(sed -n 's/.*scangate server ready" addr=\([^ ]*\).*/\1/p' "$data/server.log")
	[ -n "$addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { cat "$data/server.log"; exit 1; }
echo "server ready on $addr (registry at /v2/, API at /api/v1/, /metrics)"
step go run ./scripts/demoimage push "$addr/demo/app:1" "$token"
wait_scanned() {
	for _ in $(seq 1 100); do
		$bin images list | grep -q "$1" && return 0
		sleep 0.1
	done
	return 1
}
wait_scanned COMPLETE
step $bin images list
step $bin events tail
# A newer database: GitHub's advisories name lodash and minimist. The
# import queues a re-evaluation of the stored inventory; no image is pulled.
step $bin db import $feeds/ghsa
for _ in $(seq 1 100); do
	$bin events tail | grep -q '"SCAN_COMPLETE"' && break
	sleep 0.1
done
step $bin images list
echo "the events the re-evaluation published:"
$bin events tail | grep -E '"(Scan|Finding)"' | tail -n +2 | cut -c1-160
step $bin findings demo/app:1 --format table
# A pipeline, as in the seed: git push -> build -> scan -> approval gate.
printf '\n\033[1m--- a pipeline ---\033[0m\n'
docker version --format 'Docker Engine {{.Server.Version}} (API {{.Server.APIVersion}})' ||
	{ echo "the pipeline part needs a running Docker Engine (dockerd)"; exit 1; }
# Base images are made locally (no Docker Hub): Debian bookworm with the
# npm app, and the same release with nothing installed.
suffix=$$
go run ./scripts/demoimage "$data/base.tar" "scangate-demo/base:vulnerable-$suffix"
go run ./scripts/demoimage "$data/fixed.tar" "scangate-demo/base:fixed-$suffix" fixed
docker load -q -i "$data/base.tar"
docker load -q -i "$data/fixed.tar"
# Where approved images run, as the seed's template makes it: a cluster, a
# task definition (ECS's own fields) and a service at desired count 0. The
# deploy commands are clients of the server's API, with a deployer's token.
deployer=$($bin token create --name demo-deployer --role deployer)
export SCANGATE_SERVER="http://$addr" SCANGATE_TOKEN="$deployer"
cluster="demo-$suffix"
trap 'docker rm -f $(docker ps -aq --filter "label=io.scangate.cluster=$cluster") >/dev/null 2>&1 || true
	docker network rm "scangate-$cluster" >/dev/null 2>&1 || true
	docker rmi -f "scangate-demo/base:vulnerable-$suffix" "scangate-demo/base:fixed-$suffix" >/dev/null 2>&1 || true; cleanup' EXIT
step $bin cluster create "$cluster"
cat >"$data/taskdef.yaml" <<EOF
family: shop-api
containerDefinitions:
  - name: api
    image: $addr/demo/app:1          # a placeholder: the deploy stage replaces it with the approved digest
    entryPoint: [/app]
    environment: [{name: MESSAGE, value: "hello from shop-api"}]
    portMappings: [{containerPort: 8080}]
    healthCheck: {command: [CMD, /app, probe, "http://127.0.0.1:8080/health"], interval: 5, timeout: 2, retries: 2}
    memory: 64
EOF
cat "$data/taskdef.yaml"
step $bin taskdef register -f "$data/taskdef.yaml"
step $bin service create --cluster "$cluster" --name shop-api --taskdef shop-api --desired-count 0
step $bin service update --cluster "$cluster" shop-api --desired-count 1
step $bin repo create shop-api
cat >"$data/pipeline.yaml" <<EOF
name: shop-api
source: {repository: shop-api, branch: main}
build: {repository: shop/api}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
  timeout: 7d
deploy: {cluster: $cluster, service: shop-api, container: api}
EOF
cat "$data/pipeline.yaml"
step $bin pipeline put -f "$data/pipeline.yaml"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
repo="$data/shop-api"
git clone -q "http://demo:$token@$addr/git/shop-api.git" "$repo" 2>/dev/null
# The app: a small static HTTP server (the one the tests run).
CGO_ENABLED=0 go build -o "$repo/app" ./internal/apptest/testdata/app
printf 'FROM scangate-demo/base:vulnerable-%s\nCOPY app /app\n' "$suffix" >"$repo/Dockerfile"
echo '$ git commit -m first && git push   # FROM the vulnerable base'
git -C "$repo" add -A && git -C "$repo" commit -q -m "first" && git -C "$repo" push -q origin HEAD:main
# wait_execution waits for the execution of the repository's head to end.
wait_execution() {
	head=$(git -C "$repo" rev-parse HEAD)
	for _ in $(seq 1 600); do
		id=$($bin execution list --pipeline shop-api | awk -v c="${head:0:12}" '$4 == c && $3 != "InProgress" {print $1; exit}')
		if [ -n "$id" ]; then
			step $bin execution get "$id"
			return 0
		fi
		sleep 0.1
	done
	echo "the execution of $head did not end"
	return 1
}
wait_execution
echo "the service could start no task: its placeholder image was never approved"
step $bin service describe --cluster "$cluster" shop-api
printf 'FROM scangate-demo/base:fixed-%s\nCOPY app /app\n' "$suffix" >"$repo/Dockerfile"
echo '$ git commit -m "use the fixed base image" && git push'
git -C "$repo" commit -q -am "use the fixed base image" && git -C "$repo" push -q origin HEAD:main
wait_execution
step $bin execution get "$id" --artifact
step $bin execution list --pipeline shop-api
# The seed's last step: the approved image runs as a task of the service,
# as revision 2 of its task definition, and answers on its port.
step $bin service describe --cluster "$cluster" shop-api
step $bin taskdef describe shop-api:2
step $bin task list --cluster "$cluster" --service shop-api
port=$($bin --format json task list --cluster "$cluster" --service shop-api | tr -d ' \n' | sed -n 's/.*"containerPort":8080,[^}]*"hostPort":\([0-9]*\).*/\1/p')
echo "\$ GET http://127.0.0.1:$port/"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
sed -n '$p' <&3
echo
exec 3<&-
step $bin service delete --cluster "$cluster" shop-api
for _ in $(seq 1 300); do
	[ -z "$(docker ps -aq --filter "label=io.scangate.cluster=$cluster")" ] && break
	sleep 0.1
done

kill -TERM "$server_pid"
wait "$server_pid"
server_pid=
echo "server stopped (SIGTERM drains requests and jobs)"
