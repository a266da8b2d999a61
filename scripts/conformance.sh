#!/usr/bin/env bash
# Run the OCI distribution-spec conformance suite against scangate's
# embedded registry, and fail on any failure that is not a known gap of
# distribution v3 (listed below, by test name, with the reason).
#
# The suite is built in a temporary module, outside this repository, so
# scangate's go.mod never mentions it. A server is started on a free
# 127.0.0.1 port over a fresh data folder, with an admin token, and stopped
# at the end. The suite's reports (results.yaml, junit.xml, report.html)
# and the server's log are left in $CONFORMANCE_RESULTS.
#
# Environment:
#   CONFORMANCE_VERSION  the suite's module version (default: pinned below)
#   CONFORMANCE_STORAGE  the registry's storage: local (the data folder,
#                        default) or s3 (a bucket of a versitygw started
#                        over a temporary folder on 127.0.0.1, the server
#                        given --registry-storage s3://…)
#   CONFORMANCE_RESULTS  where reports go (default: bin/conformance, or
#                        bin/conformance-s3)
#   GO                   the go command (default: go)
#   SCANGATE_VERSITYGW   versitygw's path (default: on PATH, else in
#                        $(go env GOCACHE)/../scangate-tools, where .ci/run
#                        installs it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

GO=${GO:-go}
suite_module=github.com/opencontainers/distribution-spec/conformance
suite_version=${CONFORMANCE_VERSION:-v0.0.0-20260831232431-97274622c111}
storage=${CONFORMANCE_STORAGE:-local}
case $storage in
local) results=${CONFORMANCE_RESULTS:-$root/bin/conformance} ;;
s3) results=${CONFORMANCE_RESULTS:-$root/bin/conformance-s3} ;;
*)
	echo "conformance: CONFORMANCE_STORAGE must be local or s3" >&2
	exit 2
	;;
esac
prefix="OCI Conformance Test/"

# Known gaps: tests that fail because of what distribution v3.1.2 does, not
# because of scangate's wrapper. Names are the suite's, without "$prefix".
# A failure not listed here fails the run; a listed test that passes is
# reported, so that the list can shrink.
known_gaps=(
	# sha512: distribution checks a sha512 digest on upload, then stores and
	# answers under the blob's sha256 digest (Docker-Content-Digest: sha256,
	# Location .../sha256:...): GET/HEAD by the sha512 digest are 404, a
	# mount by it is 404, and a manifest PUT by a sha512 digest is refused
	# with 400 DIGEST_INVALID.
	"sha512 blobs/chunked multi and put chunk/blob-patch-chunked"
	"sha512 blobs/chunked multi/blob-patch-chunked"
	"sha512 blobs/chunked out-of-order and put chunk/blob-patch-chunked"
	"sha512 blobs/chunked out-of-order/blob-patch-chunked"
	"sha512 blobs/chunked single/blob-patch-chunked"
	"sha512 blobs/empty/blob-get"
	"sha512 blobs/empty/blob-head"
	"sha512 blobs/empty/blob-patch-chunked"
	"sha512 blobs/empty/blob-patch-stream"
	"sha512 blobs/empty/blob-post-put"
	"sha512 blobs/emptyJSON/blob-get"
	"sha512 blobs/emptyJSON/blob-head"
	"sha512 blobs/emptyJSON/blob-patch-chunked"
	"sha512 blobs/emptyJSON/blob-patch-stream"
	"sha512 blobs/emptyJSON/blob-post-put"
	"sha512 blobs/mount anonymous/blob-mount-anonymous"
	"sha512 blobs/mount anonymous/blob-patch-chunked"
	"sha512 blobs/mount anonymous/blob-patch-stream"
	"sha512 blobs/mount anonymous/blob-post-put"
	"sha512 blobs/mount missing/blob-mount"
	"sha512 blobs/mount/blob-mount"
	"sha512 blobs/mount/blob-patch-chunked"
	"sha512 blobs/mount/blob-patch-stream"
	"sha512 blobs/mount/blob-post-put"
	"sha512 blobs/post+put/blob-post-put"
	"sha512 blobs/range requests/blob-patch-chunked"
	"sha512 blobs/range requests/blob-patch-stream"
	"sha512 blobs/range requests/blob-post-put"
	"sha512 blobs/stream/blob-patch-stream"
	"sha512/head/blob-head"
	"sha512/head/manifest-head-by-digest"
	"sha512/pull/blob-get"
	"sha512/pull/manifest-by-digest"
	"sha512/push/blob-patch-chunked"
	"sha512/push/blob-patch-stream"
	"sha512/push/blob-post-put"
	"sha512/push/manifest-by-digest"

	# Referrers API: distribution v3 has no /v2/NAME/referrers/DIGEST route;
	# it answers 404 "404 page not found" (text/plain).
	"empty/referrers"
	"artifacts-with-subject/referrers"
	"index-with-subject/referrers"
	"missing-subject/referrers"

	# OCI-Subject: distribution v3 stores a manifest with a subject (201)
	# but does not send the OCI-Subject response header.
	"artifacts-with-subject/push/manifest-by-digest"
	"artifacts-with-subject/push/manifest-by-tag"
	"index-with-subject/push/manifest-by-digest"
	"index-with-subject/push/manifest-by-tag"
	"missing-subject/push/manifest-by-digest"
	"missing-subject/push/manifest-by-tag"

	# Non-distributable layers: a layer with external URLs is refused by
	# distribution's default validation.manifests.urls (allow nothing),
	# which it reports as 500 UNKNOWN "invalid URL on layer". scangate keeps
	# that default on purpose: it scans what it stores, and cannot scan a
	# layer a client would fetch from elsewhere. The pull, head and tag-list
	# tests of that image fail because the push did.
	"non-distributable-layers/push/manifest-by-digest"
	"non-distributable-layers/push/manifest-by-tag"
	"non-distributable-layers/head/manifest-head-by-digest"
	"non-distributable-layers/head/manifest-head-by-tag"
	"non-distributable-layers/pull/manifest-by-digest"
	"non-distributable-layers/pull/manifest-by-tag"
	"non-distributable-layers/tag-list"
)

work=$(mktemp -d "${TMPDIR:-/tmp}/scangate-conformance.XXXXXX")
server_pid=
gw_pid=
stop_server() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$server_pid" 2>/dev/null; then
			echo "conformance: the server did not stop; killing it" >&2
			kill -KILL "$server_pid" 2>/dev/null || true
		fi
		wait "$server_pid" 2>/dev/null || true
	fi
	server_pid=
}
cleanup() {
	stop_server
	if [ -n "$gw_pid" ]; then
		kill "$gw_pid" 2>/dev/null || true
		wait "$gw_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "conformance: building the suite ($suite_module@$suite_version)"
mkdir "$work/suite"
(
	cd "$work/suite"
	export GOWORK=off GOFLAGS=-mod=mod
	$GO mod init scangate.invalid/conformance >/dev/null 2>&1
	if ! $GO get "$suite_module@$suite_version" >get.log 2>&1; then
		cat get.log >&2
		exit 1
	fi
	# The suite is a main package; "go test" of it is its deprecated legacy
	# mode, so it is built as the program it is.
	$GO build -o "$work/conformance" "$suite_module"
)

echo "conformance: building scangate"
$GO build -o "$work/scangate" ./cmd/scangate

data=$work/data
token=$("$work/scangate" --data-dir "$data" token create --name conformance --role admin 2>/dev/null)
case $token in
sgt_*) ;;
*)
	echo "conformance: token create printed no token" >&2
	exit 1
	;;
esac

server_args=()
if [ "$storage" = s3 ]; then
	vgw=${SCANGATE_VERSITYGW:-$(command -v versitygw || echo "$(dirname "$($GO env GOCACHE)")/scangate-tools/versitygw")}
	if [ ! -x "$vgw" ]; then
		echo "conformance: versitygw not found at $vgw (.ci/run installs it: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)" >&2
		exit 1
	fi
	# The gateway's root: a folder a bucket, made here.
	mkdir -p "$work/s3/conformance"
	export AWS_ACCESS_KEY_ID=conformance AWS_SECRET_ACCESS_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	gw_port=
	for _ in $(seq 20); do
		port=$((20000 + RANDOM % 40000))
		ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
			"$vgw" --port "127.0.0.1:$port" --quiet posix "$work/s3" >"$work/versitygw.log" 2>&1 &
		gw_pid=$!
		for _ in $(seq 100); do
			kill -0 "$gw_pid" 2>/dev/null || break
			if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
				sleep 0.3 # a port taken by someone else: the gateway exits
				kill -0 "$gw_pid" 2>/dev/null && gw_port=$port
				break
			fi
			sleep 0.1
		done
		[ -n "$gw_port" ] && break
		kill "$gw_pid" 2>/dev/null || true
		wait "$gw_pid" 2>/dev/null || true
		gw_pid=
	done
	if [ -z "$gw_port" ]; then
		echo "conformance: versitygw did not start:" >&2
		tail -20 "$work/versitygw.log" >&2
		exit 1
	fi
	echo "conformance: S3 (versitygw) at 127.0.0.1:$gw_port"
	export SCANGATE_REGISTRY_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	server_args+=(--registry-storage "s3://conformance/registry?endpoint=http://127.0.0.1:$gw_port&force-path-style=true&region=us-east-1")
fi

"$work/scangate" --data-dir "$data" server --addr 127.0.0.1:0 --shutdown-timeout 5s "${server_args[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
addr=
for _ in $(seq 300); do
	addr=$(sed -n 's/.*msg="scangate server ready" addr=\([^ ]*\).*/\1/p' "$work/server.log" | head -1)
	[ -n "$addr" ] && break
	if ! kill -0 "$server_pid" 2>/dev/null; then
		break
	fi
	sleep 0.1
done
if [ -z "$addr" ]; then
	echo "conformance: the server did not start:" >&2
	tail -20 "$work/server.log" >&2
	exit 1
fi
echo "conformance: server at $addr"

rm -rf "$results"
mkdir -p "$results"
# Only our settings count: no inherited OCI_* variable, no configuration
# file from the current folder.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^OCI_' || true)
mkdir "$work/run"
set +e
(
	cd "$work/run"
	export OCI_REGISTRY=$addr OCI_TLS=disabled \
		OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 \
		OCI_USERNAME=conformance OCI_PASSWORD=$token \
		OCI_RESULTS_DIR=$results OCI_LOG=warn OCI_VERSION=1.1 \
		OCI_API_PULL=true OCI_API_PUSH=true \
		OCI_API_TAGS_LIST=true OCI_API_REFERRER=true \
		OCI_API_BLOBS_DELETE=true OCI_API_MANIFESTS_DELETE=true OCI_API_TAGS_DELETE=true \
		OCI_API_BLOBS_UPLOAD_CANCEL=true
	"$work/conformance"
) >"$results/suite.out" 2>"$results/suite.err"
suite_status=$?
set -e
stop_server
cp "$work/server.log" "$results/server.log"

junit=$results/junit.xml
if [ ! -s "$junit" ]; then
	echo "conformance: the suite wrote no report (exit $suite_status):" >&2
	tail -20 "$results/suite.err" >&2
	exit 1
fi

# The suite's own summary: every check it made, some several times per test.
sed -n '/^OCI Conformance Result/,/^$/p' "$results/suite.out"

# One line per test: STATUS<TAB>NAME (the suite writes each testcase's
# attributes on one line).
sed -n 's/.*<testcase name="\([^"]*\)".* status="\([^"]*\)".*/\2\t\1/p' "$junit" |
	sed -e 's/&#34;/"/g' -e "s/&#39;/'/g" -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&amp;/\&/g' \
		-e "s#\t$prefix#\t#" >"$work/cases.tsv"
total=$(wc -l <"$work/cases.tsv")
if [ "$total" -eq 0 ]; then
	echo "conformance: no test cases in $junit" >&2
	exit 1
fi
count() { awk -F'\t' -v s="$1" '$1 == s' "$work/cases.tsv" | wc -l; }
passed=$(count passed)
skipped=$(count skipped)
disabled=$(count disabled)
awk -F'\t' '$1 != "passed" && $1 != "skipped" && $1 != "disabled" { print $2 }' "$work/cases.tsv" | sort -u >"$work/failing"
printf '%s\n' "${known_gaps[@]}" | sort -u >"$work/known"
failed=$(awk -F'\t' '$1 != "passed" && $1 != "skipped" && $1 != "disabled"' "$work/cases.tsv" | wc -l)
comm -23 "$work/failing" "$work/known" >"$work/unexpected"
comm -13 "$work/failing" "$work/known" >"$work/stale"

echo "Test cases (junit.xml): $total; passed $passed, failed $failed ($(wc -l <"$work/failing") distinct names, all known gaps unless listed below), skipped $skipped, disabled $disabled"
echo "Skipped:"
awk -F'\t' '$1 == "skipped" || $1 == "disabled" { print "  " $2 }' "$work/cases.tsv" | sort | uniq -c
if [ -s "$work/stale" ]; then
	echo "Known gaps that no longer fail (remove them from scripts/conformance.sh):"
	sed 's/^/  /' "$work/stale"
fi
if [ -s "$work/unexpected" ]; then
	echo "FAIL: failures that are not known gaps (details in $results/report.html and suite.err):"
	while IFS= read -r name; do
		echo "  $name"
		grep -F "name=\"$prefix$name\"" "$results/suite.err" | sed -n 's/.* error=/      /p' | sort -u | head -3
	done <"$work/unexpected"
	exit 1
fi
echo "conformance ($storage storage): PASS (only known gaps fail); reports in $results"
