#!/usr/bin/env bash
# The demo of what scangate does so far: build the vulnerability database
# from the bundled real feeds (no network), ask it what a scan asks, scan an
# image and gate it; then run the server: a push to its registry is scanned,
# the result is an event, and a database update re-evaluates the image
# without pulling it; then a pipeline: a git push is built on the Docker
# Engine, scanned and gated: rejected, then approved after a fix.
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
trap 'docker rmi -f "scangate-demo/base:vulnerable-$suffix" "scangate-demo/base:fixed-$suffix" >/dev/null 2>&1 || true; cleanup' EXIT
step $bin repo create shop-api
cat >"$data/pipeline.yaml" <<EOF
name: shop-api
source: {repository: shop-api, branch: main}
build: {repository: shop/api}
approval:
  policy:
    thresholds: {CRITICAL: 0, HIGH: 0}
  timeout: 7d
deploy: {cluster: default, service: shop-api, container: api}
EOF
cat "$data/pipeline.yaml"
step $bin pipeline put -f "$data/pipeline.yaml"
export GIT_AUTHOR_NAME=demo GIT_AUTHOR_EMAIL=demo@example.com GIT_COMMITTER_NAME=demo GIT_COMMITTER_EMAIL=demo@example.com
repo="$data/shop-api"
git clone -q "http://demo:$token@$addr/git/shop-api.git" "$repo" 2>/dev/null
printf 'FROM scangate-demo/base:vulnerable-%s\nCOPY app.txt /srv/app.txt\n' "$suffix" >"$repo/Dockerfile"
echo hello >"$repo/app.txt"
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
printf 'FROM scangate-demo/base:fixed-%s\nCOPY app.txt /srv/app.txt\n' "$suffix" >"$repo/Dockerfile"
echo '$ git commit -m "use the fixed base image" && git push'
git -C "$repo" commit -q -am "use the fixed base image" && git -C "$repo" push -q origin HEAD:main
wait_execution
step $bin execution get "$id" --artifact
step $bin execution list --pipeline shop-api

kill -TERM "$server_pid"
wait "$server_pid"
server_pid=
echo "server stopped (SIGTERM drains requests and jobs)"
