#!/usr/bin/env bash
# first-build.sh: how long `make build` takes on a machine that has never
# built scangate (empty Go build and module caches: every module comes from
# the Go module proxy and every package is compiled), and then again with
# both caches warm. The README quotes what it prints.
#
#   scripts/first-build.sh        # from a clone; leaves nothing behind
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
git clone -q . "$tmp/src"
export GOCACHE=$tmp/gocache GOMODCACHE=$tmp/gomodcache GOFLAGS=-modcacherw
cd "$tmp/src"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
# build runs make build quietly (go lists every module it downloads) and
# prints its wall time in milliseconds; on a failure, what make said.
build() {
	local start=$(date +%s%N)
	make build >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
	echo $(( ($(date +%s%N) - start) / 1000000 ))
}
cold=$(build)
rm -f bin/scangate
warm=$(build)
printf 'first make build (empty caches): %d s\nagain (caches warm): %d.%d s\n' $((cold / 1000)) $((warm / 1000)) $((warm % 1000 / 100))
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
