#!/usr/bin/env bash
# bench/speed.sh: scangate's whole scan beside trivy's SBOM alone on the
# images of bench/inputs.sh (made by debootstrap, the Docker Engine and
# `docker save`), through every way in: docker save archives of one and of
# many layers, a gzip OCI layout, the Docker Engine (docker:) and a
# registry (scangate's own server); the layer cache on a rebuilt image;
# peak memory on a 1 GB image. See bench/README.md ("Speed on real docker
# save archives").
#
#   bench/speed.sh                 everything (makes the inputs first if missing)
#   RUNS=7 bench/speed.sh          timed runs per command (default 7; medians)
#   SKIP_PEERS=1 bench/speed.sh    scangate alone
#   ONLY=registry-big bench/speed.sh   that side-by-side table alone (no cache, no memory)
#   BASELINE=3fa4d45 bench/speed.sh   also that commit's scangate, in the
#                                  same hyperfine runs (before and after, paired)
#
# trivy is pinned (TRIVY_VERSION, default v0.74.0) and built from the Go
# module proxy into $SCANGATE_BENCH_CACHE/trivy-$TRIVY_VERSION/ once.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${SCANGATE_BENCH_CACHE:-$HOME/.cache/scangate-bench}
RUNS=${RUNS:-7}
SKIP_PEERS=${SKIP_PEERS:-}
BASELINE=${BASELINE:-}
ONLY=${ONLY:-}
TRIVY_VERSION=${TRIVY_VERSION:-v0.74.0}
out=$cache/speed
mkdir -p "$out" "$cache/logs"
results=$out/results.txt
note() { printf '%s\n' "$*" | tee -a "$results"; }
die() { printf 'speed: %s\n' "$*" >&2; exit 1; }
command -v hyperfine >/dev/null || die "needs hyperfine (apt-get install hyperfine)"
command -v jq >/dev/null || die "needs jq"
[ -x /usr/bin/time ] || die "needs GNU time (apt-get install time)"

bash bench/inputs.sh || die "bench/inputs.sh failed"
{
	echo "bench/speed.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "scangate at $(git describe --tags --always --dirty 2>/dev/null || echo unknown)"
} >"$results"

# ---------------------------------------------------------------- tools
go build -tags isal -o "$out/scangate" ./cmd/scangate || die "go build scangate failed"
sg=$out/scangate
basebin=
if [ -n "$BASELINE" ]; then
	rm -rf "$out/baseline-src" && mkdir -p "$out/baseline-src"
	git archive "$BASELINE" | tar -x -C "$out/baseline-src" || die "git archive $BASELINE failed"
	(cd "$out/baseline-src" && go build -tags isal -o "$out/scangate-baseline" ./cmd/scangate) || die "go build of $BASELINE failed"
	basebin=$out/scangate-baseline
	note "baseline: scangate at $BASELINE ($basebin)"
fi
trivy=$cache/trivy-$TRIVY_VERSION/trivy
if [ -z "$SKIP_PEERS" ] && [ ! -x "$trivy" ]; then
	echo "building trivy $TRIVY_VERSION (20 to 60 minutes; log: $cache/logs/trivy-install.log)"
	GOEXPERIMENT=jsonv2 GOBIN=$cache/trivy-$TRIVY_VERSION go install "github.com/aquasecurity/trivy/cmd/trivy@$TRIVY_VERSION" \
		>"$cache/logs/trivy-install.log" 2>&1 || note "trivy $TRIVY_VERSION: go install FAILED (see the log): scangate alone"
fi
have_trivy=
if [ -z "$SKIP_PEERS" ] && [ -x "$trivy" ]; then
	have_trivy=1
	note "trivy: $(go version -m "$trivy" | awk '$1 == "mod" {print $2, $3}') ($trivy)"
else
	note "trivy: not measured"
fi
# trivy offline, SBOM only (--format cyclonedx turns vulnerability scanning
# off), no cache between runs.
export TRIVY_CACHE_DIR=$out/trivy-cache
tv="$trivy image --format cyclonedx --output /dev/null --skip-db-update --skip-java-db-update --offline-scan --skip-check-update --skip-version-check --disable-telemetry --cache-backend memory --quiet"

# ---------------------------------------------------------------- database
export SCANGATE_DATA_DIR=$out/data
rm -rf "$SCANGATE_DATA_DIR"
feeds=testdata/vulndata
$sg db import $feeds/go-vulndb.zip $feeds/pypa-advisory-database.zip $feeds/debian $feeds/alpine $feeds/ghsa $feeds/nvd \
	>"$cache/logs/speed-import.log" 2>&1 || die "db import failed"
scan() { echo "${2:-$sg} scan --layer-cache-bytes 0 --format json $1 >/dev/null"; }

# ---------------------------------------------------------------- the registry path
srv=$out/server
rm -rf "$srv"
$sg --data-dir "$srv" db import $feeds/debian >/dev/null 2>&1
token=$($sg --data-dir "$srv" token create --name bench --role pusher)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$sg --data-dir "$srv" server --addr "127.0.0.1:$port" --anonymous-pull >"$cache/logs/speed-server.log" 2>&1 &
srv_pid=$!
trap 'kill $srv_pid 2>/dev/null; wait $srv_pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
reg=127.0.0.1:$port/bench/big:1
SCANGATE_TOKEN=$token go run ./bench/ocilayout -push "$reg" "docker-archive:$cache/big.tar" || die "push to the registry failed"

# ---------------------------------------------------------------- side by side
timeit() { # name, then label/command pairs
	local name=$1
	shift
	local args=()
	while [ $# -gt 0 ]; do
		args+=(-n "$1" "$2")
		shift 2
	done
	hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$out/$name.json" "${args[@]}" \
		>"$cache/logs/hyperfine-$name.log" 2>&1 || { cat "$cache/logs/hyperfine-$name.log"; return 1; }
	jq -r '.results[] | [.command, .median, .min, .max, (.times|length), .user, .system] | @tsv' "$out/$name.json" |
		awk -F'\t' '{printf "%-44s median %6.3f s  (min %.3f, max %.3f, %d runs; user %.3f s, sys %.3f s)\n", $1, $2, $3, $4, $5, $6, $7}' | tee -a "$results"
	if [ -n "$have_trivy" ]; then
		# Wall (median) and CPU (mean user + sys) ratios; CPU time is less
		# sensitive to what else the machine runs.
		jq -r '.results | (map(select(.command | startswith("scangate ")))[0]) as $s | (map(select(.command | startswith("trivy ")))[0]) as $t |
			[$s.median, $t.median, $s.user + $s.system, $t.user + $t.system] | @tsv' "$out/$name.json" |
			awk -F'\t' -v n="$name" '{printf "%-44s %.2fx wall, %.2fx CPU\n", "  scangate / trivy, " n, $1/$2, $3/$4}' | tee -a "$results"
	fi
	note "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}
pair() { # name, scangate ref, trivy arguments, then more label/command pairs to time with them
	[ -n "$ONLY" ] && [ "$1" != "$ONLY" ] && return
	local more=("${@:4}")
	[ -n "$basebin" ] && more+=("before: scangate $BASELINE $1" "$(scan "$2" "$basebin")")
	if [ -n "$have_trivy" ]; then
		timeit "$1" "scangate $1" "$(scan "$2")" "trivy SBOM $1" "$tv $3" "${more[@]}"
	else
		timeit "$1" "scangate $1" "$(scan "$2")" "${more[@]}"
	fi
}
note "-- whole scan (scangate: catalog + match + JSON report + stored inventory, no layer cache) and trivy's SBOM alone; hyperfine, 1 warm-up + $RUNS runs"
pair docker-save-big "docker-archive:$cache/big.tar" "--input $cache/big.tar"
pair oci-gzip-big "oci:$cache/big.oci:1" "--input $cache/big.oci"
# Offline, trivy cannot read jars: it needs its Java DB, which it must
# download on a first run. It passes over /usr/share/java here, so it does
# less than scangate does on these two images (which favours trivy).
pair docker-save-multi "docker-archive:$cache/multi.tar" "--skip-dirs /usr/share/java --input $cache/multi.tar"
pair docker-save-small "docker-archive:$cache/small.tar" "--skip-dirs /usr/share/java --input $cache/small.tar"
# Both wait for the engine's export of the image (the docker save stream):
# timed alone beside them, it is what neither can go below.
pair docker-engine-big "docker:scangate-bench/big:1" "--image-src docker scangate-bench/big:1" \
	"the engine's export alone" "docker save -o $out/export.tar scangate-bench/big:1"
pair registry-big "$reg" "--image-src remote --insecure $reg"

# ---------------------------------------------------------------- the layer cache
[ -n "$ONLY" ] && { note "results in $results"; exit 0; }
note "-- the layer cache: rebuilt.tar (multi.tar + one layer: lodash upgraded, minimist deleted) after multi.tar was scanned"
rm -rf "$SCANGATE_DATA_DIR/layercache"
$sg scan --format json "docker-archive:$cache/multi.tar" >/dev/null || die "scan multi.tar failed"
base=$out/base-records.txt
ls "$SCANGATE_DATA_DIR/layercache" >"$base"
# Before each run, forget the rebuilt image's own layers: each run reads
# them and takes the rest from the cache.
prepare="cd $SCANGATE_DATA_DIR/layercache && ls | grep -vxFf $base | xargs -r rm -f"
hyperfine --style basic --runs "$RUNS" --warmup 1 --prepare "$prepare" --export-json "$out/cache.json" \
	-n "scangate rebuilt, base layers cached" "$sg scan --format json docker-archive:$cache/rebuilt.tar >/dev/null" \
	-n "scangate rebuilt, no cache" "$(scan "docker-archive:$cache/rebuilt.tar")" >"$cache/logs/hyperfine-cache.log" 2>&1 ||
	cat "$cache/logs/hyperfine-cache.log"
jq -r '.results[] | [.command, .median, .min, .max, (.times|length), .user, .system] | @tsv' "$out/cache.json" |
	awk -F'\t' '{printf "%-44s median %6.3f s  (min %.3f, max %.3f, %d runs; user %.3f s, sys %.3f s)\n", $1, $2, $3, $4, $5, $6, $7}' | tee -a "$results"
if [ -n "$basebin" ]; then
	# The same with the baseline's scangate, in a data folder of its own
	# (its records are of another format), alternating with this one.
	bdata=$out/data-baseline
	rm -rf "$bdata" && mkdir -p "$bdata" && cp "$SCANGATE_DATA_DIR/scangate.db" "$bdata/"
	$basebin --data-dir "$bdata" scan --format json "docker-archive:$cache/multi.tar" >/dev/null || die "baseline scan multi.tar failed"
	ls "$bdata/layercache" >"$out/base-records-baseline.txt"
	hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$out/cache-pair.json" \
		--prepare "$prepare" -n "scangate rebuilt, base layers cached" "$sg scan --format json docker-archive:$cache/rebuilt.tar >/dev/null" \
		--prepare "cd $bdata/layercache && ls | grep -vxFf $out/base-records-baseline.txt | xargs -r rm -f" \
		-n "before: scangate $BASELINE rebuilt, cached" "$basebin --data-dir $bdata scan --format json docker-archive:$cache/rebuilt.tar >/dev/null" \
		>"$cache/logs/hyperfine-cache-pair.log" 2>&1 || cat "$cache/logs/hyperfine-cache-pair.log"
	jq -r '.results[] | [.command, .median, .min, .max, (.times|length), .user, .system] | @tsv' "$out/cache-pair.json" |
		awk -F'\t' '{printf "%-44s median %6.3f s  (min %.3f, max %.3f, %d runs; user %.3f s, sys %.3f s)\n", $1, $2, $3, $4, $5, $6, $7}' | tee -a "$results"
fi

# ---------------------------------------------------------------- the engine, again
# A local image scanned again: scangate keeps what it needs of the image
# besides its layers (config, manifest) in the layer cache, and exports it
# only if a layer is missing there; trivy (its cache on disk here) likewise
# inspects the image first and saves it only for a layer it lacks.
note "-- docker:scangate-bench/big:1 scanned again, each with its cache (scangate's layer cache, trivy's fs cache)"
again=(-n "scangate docker: again, cached" "$sg scan --format json docker:scangate-bench/big:1 >/dev/null")
if [ -n "$have_trivy" ]; then
	rm -rf "$out/trivy-fs-cache"
	again+=(-n "trivy SBOM docker: again, cached" "TRIVY_CACHE_DIR=$out/trivy-fs-cache ${tv/--cache-backend memory/--cache-backend fs} --image-src docker scangate-bench/big:1")
fi
hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$out/engine-again.json" "${again[@]}" \
	>"$cache/logs/hyperfine-engine-again.log" 2>&1 || cat "$cache/logs/hyperfine-engine-again.log"
jq -r '.results[] | [.command, .median, .min, .max, (.times|length), .user, .system] | @tsv' "$out/engine-again.json" |
	awk -F'\t' '{printf "%-44s median %6.3f s  (min %.3f, max %.3f, %d runs; user %.3f s, sys %.3f s)\n", $1, $2, $3, $4, $5, $6, $7}' | tee -a "$results"

# ---------------------------------------------------------------- peak memory
note "-- peak RSS (/usr/bin/time -v) on 1g.tar (1 GB: big + 900 MB of incompressible files, 3 layers)"
peak() { # label cmd
	local log=$cache/logs/peak-${1//[^a-zA-Z0-9]/_}.log
	/usr/bin/time -v bash -c "$2" >/dev/null 2>"$log"
	note "$(awk -v l="$1" -F': ' '/Maximum resident set size/ {rss=$2} /Elapsed \(wall clock\)/ {w=$2} END {printf "%-44s peak RSS %d MB  (wall %s)", l, rss/1024, w}' "$log")"
}
peak "scangate 1g.tar" "$(scan "docker-archive:$cache/1g.tar")"
[ -n "$basebin" ] && peak "before: scangate $BASELINE 1g.tar" "$(scan "docker-archive:$cache/1g.tar" "$basebin")"
peak "scangate 1g.tar, with the cache, first" "$sg scan --format json docker-archive:$cache/1g.tar >/dev/null"
peak "scangate 1g.tar, with the cache, again" "$sg scan --format json docker-archive:$cache/1g.tar >/dev/null"
[ -n "$have_trivy" ] && peak "trivy SBOM 1g.tar" "$tv --input $cache/1g.tar"
note "results in $results"
