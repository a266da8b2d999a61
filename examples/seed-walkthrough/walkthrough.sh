#!/usr/bin/env bash
# The seed's story, played on this machine and narrated: a scangate server,
# the stack of stack.yaml made by `scangate up`, the app's first commit
# built and its image Rejected with its reasons, the service's desired count
# set to 1, a commit with a fixed Dockerfile Approved and deployed as a new
# task-definition revision, its task RUNNING and answering on its port.
#
# Needs Go, git and a running Docker Engine; no registry on the internet:
# the base images are made here and pushed to scangate's own registry. The
# vulnerability data comes from upstream when the network allows, else from
# the bundled feeds (testdata/vulndata); the output says which.
#
# On a terminal the server keeps running at the end until Ctrl-C; otherwise
# (CI, scripts) the walkthrough runs `scangate down` and stops, unless
# DEMO_KEEP=1. SCANGATE_OFFLINE=1 skips the download.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=$root/bin/scangate
[ -x "$bin" ] || make build
data=$(mktemp -d)
server_pid= hook_pid=
cluster="seed-$$" # its own Docker network and containers: runs side by side do not meet
cleanup() {
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
	if [ -n "$hook_pid" ]; then kill "$hook_pid" 2>/dev/null || true; wait "$hook_pid" 2>/dev/null || true; fi
	# What a run cut short leaves on the Docker Engine (scangate down
	# removes it in a run that ends).
	ids=$(docker ps -aq --filter "label=io.scangate.cluster=$cluster" 2>/dev/null || true)
	[ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
	docker network rm "scangate-$cluster" >/dev/null 2>&1 || true
	rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# step shows a command, the webhook's secret hidden, and runs it.
step() {
	local line="$*"
	[ -z "${hook_secret:-}" ] || line=${line//$hook_secret/********}
	printf '\033[1m$ %s\033[0m\n' "$line"
	"$@"
}
started=$(date +%s)

export SCANGATE_DATA_DIR="$data/server"
say "The vulnerability database"
feeds=testdata/vulndata
if [ "${SCANGATE_OFFLINE:-}" != 1 ] && timeout 900 "$bin" db update >"$data/update.log" 2>&1; then
	echo "vulnerability data: from upstream, downloaded now (scangate db update)"
else
	echo "vulnerability data: from the BUNDLED feeds in $feeds (real upstream data, a snapshot; no network here)"
	"$bin" db import $feeds/go-vulndb.zip $feeds/pypa-advisory-database.zip \
		$feeds/debian $feeds/alpine $feeds/ghsa $feeds/nvd >/dev/null
fi
step "$bin" db status

say "The server"
docker version --format 'Docker Engine {{.Server.Version}}' >/dev/null ||
	{ echo "the walkthrough needs a running Docker Engine (dockerd)"; exit 1; }
# The rule's webhook target is a receiver on this machine, which webhooks
# may reach only when the server allows it.
go build -o "$data/hook" ./examples/seed-walkthrough/hook
hook_secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$data/hook" "$data/hook.addr" "$hook_secret" >"$data/hook.log" 2>&1 &
hook_pid=$!
admin=$("$bin" token create --name seed-admin --role admin)
"$bin" server --addr 127.0.0.1:0 --allow-private-targets 127.0.0.1/32 2>"$data/server.log" &
server_pid=$!
addr=
for _ in $(seq 1 300); do
	addr=$(sed -n 's/.*scangate server ready" addr=\([^ ]*\).*/\1/p' "$data/server.log")
	[ -n "$addr" ] && [ -s "$data/hook.addr" ] && break
	sleep 0.1
done
[ -n "$addr" ] || { cat "$data/server.log"; exit 1; }
echo "scangate server on http://$addr (registry /v2/, git /git/, API /api/v1/, console /)"
export SCANGATE_SERVER="http://$addr" SCANGATE_TOKEN="$admin"

# Base images, made here (Debian bookworm's real package lists, no
# download) and pushed to scangate's registry, where Dockerfiles name them.
# 12-old carries an npm app with known vulnerabilities; 12-minimal has no
# packages installed.
go run ./scripts/demoimage push "$addr/base/debian:12-old" "$admin"
go run ./scripts/demoimage push "$addr/base/debian:12-minimal" "$admin" fixed

say "The stack: scangate up"
# The app's folder, with its static binary built next to its Dockerfile,
# is the repository's first commit.
work="$data/seed-walkthrough"
mkdir -p "$work"
cp -r examples/seed-walkthrough/stack.yaml examples/seed-walkthrough/app "$work/"
CGO_ENABLED=0 go build -trimpath -o "$work/app/shop-api" ./examples/seed-walkthrough/app
params=(--param "registry=$addr" --param "cluster=$cluster" --param "webhook=http://$(cat "$data/hook.addr")/"
	--param "webhook_secret=$hook_secret")
step "$bin" up -f "$work/stack.yaml" "${params[@]}" --dry-run
step "$bin" up -f "$work/stack.yaml" "${params[@]}"
echo "(up again changes nothing:)"
step "$bin" up -f "$work/stack.yaml" "${params[@]}" | tail -1

# wait_execution waits for the execution of commit $1 to end, prints it,
# and keeps what it printed in $ex_out.
wait_execution() {
	for _ in $(seq 1 3000); do
		id=$("$bin" execution list --pipeline shop-api | awk -v c="${1:0:12}" '!found && $4 == c && $3 != "InProgress" {print $1; found = 1}')
		if [ -n "$id" ]; then
			ex_out=$(step "$bin" execution get "$id")
			printf '%s\n' "$ex_out"
			return 0
		fi
		sleep 0.2
	done
	echo "the execution of $1 did not end"
	return 1
}
export GIT_AUTHOR_NAME=seed GIT_AUTHOR_EMAIL=seed@example.com GIT_COMMITTER_NAME=seed GIT_COMMITTER_EMAIL=seed@example.com
# The token goes to git in a header, never in the URL.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="Authorization: Bearer $admin"
clone="$data/shop-api"
git clone -q "http://$addr/git/shop-api.git" "$clone"

say "The first commit: built, scanned, and the gate says"
wait_execution "$(git -C "$clone" rev-parse HEAD)"
grep -q "Rejected by" <<<"$ex_out" || { echo "the first commit's image was not rejected"; exit 1; }
echo "=> the first commit's image is REJECTED: the policy's reasons are above; it never runs"
"$bin" images list --repository shop/api

say "The service: desired count 0 -> 1"
step "$bin" service update --cluster "$cluster" shop-api --desired-count 1
echo "no task starts: the service's image was never approved"

say "A fixed Dockerfile: FROM base/debian:12-minimal"
sed -i 's|/base/debian:12-old|/base/debian:12-minimal|' "$clone/Dockerfile"
git -C "$clone" diff --stat
echo '$ git commit -am "Dockerfile: the minimal base image" && git push'
git -C "$clone" commit -q -am "Dockerfile: the minimal base image" && git -C "$clone" push -q origin HEAD:main
wait_execution "$(git -C "$clone" rev-parse HEAD)"
grep -q "Approved by" <<<"$ex_out" || { echo "the fixed commit's image was not approved"; exit 1; }
echo "=> the fixed commit's image is APPROVED, and deployed"

say "Deployed: a new task-definition revision, its task RUNNING"
step "$bin" taskdef list shop-api
port=
for _ in $(seq 1 600); do
	port=$("$bin" --format json task list --cluster "$cluster" --service shop-api | tr -d ' \n' |
		sed -n 's/.*"lastStatus":"RUNNING".*"containerPort":8080,[^}]*"hostPort":\([0-9]*\).*/\1/p')
	[ -n "$port" ] && break
	sleep 0.2
done
step "$bin" task list --cluster "$cluster" --service shop-api
[ -n "$port" ] || { echo "no RUNNING task of shop-api"; exit 1; }
step curl -sS "http://127.0.0.1:$port/"
echo "the rule's webhook heard:"
sed 's/^/  /' "$data/hook.log"

say "Done in $(($(date +%s) - started)) s"
console_token=$("$bin" token create --name console --role approver)
echo "console:      http://$addr/"
echo "login token:  $console_token   (role approver)"
echo "clean up:     SCANGATE_SERVER=http://$addr SCANGATE_TOKEN=$admin $bin down -f $work/stack.yaml --yes --purge"
if [ "${DEMO_KEEP:-}" = 1 ] || { [ -t 0 ] && [ "${DEMO_KEEP:-}" != 0 ]; }; then
	echo "the server keeps running until Ctrl-C"
	wait "$server_pid"
	exit 0
fi
say "Not on a terminal: scangate down, then stop (DEMO_KEEP=1 keeps the server)"
step "$bin" down -f "$work/stack.yaml" "${params[@]}" --yes --purge
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=
echo "server stopped"
