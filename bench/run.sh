#!/usr/bin/env bash
# bench/run.sh: scangate's image scan beside trivy (SBOM only) and
# osv-scanner, on a realistic image built here from Debian bookworm, a Go
# binary, an npm app and Python packages; peak memory on a ~1 GB image;
# time at three sizes; and every difference between scangate's findings and
# osv-scanner's. See bench/README.md.
#
#   bench/run.sh                 everything (run as root: debootstrap, apt-get)
#   RUNS=3 bench/run.sh          fewer timed runs (default 5; medians)
#   SIZES="256 512" bench/run.sh other padded sizes, in MB (default 256 512 1024)
#   SKIP_PEERS=1 bench/run.sh    scangate only
#
# Everything it makes is cached under bench/.work/ (rm -rf it to start over).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/bench/.work
RUNS=${RUNS:-5}
SIZES=${SIZES:-256 512 1024}
SKIP_PEERS=${SKIP_PEERS:-}
mkdir -p "$work/logs" "$work/out"
results=$work/results.txt
{
	echo "bench/run.sh, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GB memory"
	echo "scangate at $(git describe --tags --always --dirty 2>/dev/null || echo unknown)"
} >"$results"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '%s\n' "$*" | tee -a "$results"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

gobin=$(go env GOPATH)/bin
export PATH=$PATH:$gobin

# ---------------------------------------------------------------- tools
say "tools"
need_apt=()
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v hyperfine >/dev/null || need_apt+=(hyperfine)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v jq >/dev/null || need_apt+=(jq)
command -v npm >/dev/null || need_apt+=(npm)
# scangate's cgo build inflates layers with ISA-L (internal/scan/inflate_isal.go).
[ -f /usr/include/isa-l/igzip_lib.h ] || need_apt+=(libisal-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing ${need_apt[*]}: run as root, or install them"
	echo "apt-get install ${need_apt[*]}"
	apt-get update -qq >"$work/logs/apt.log" 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >>"$work/logs/apt.log" 2>&1 ||
		echo "apt-get install failed (see $work/logs/apt.log); going on with what there is"
fi
command -v hyperfine >/dev/null && echo "timing with $(hyperfine --version)" ||
	echo "no hyperfine: timing with /usr/bin/time, median of $RUNS runs"

# The peers take minutes to build: start them now, wait for them later.
# A peer that does not install is reported below, not hidden.
declare -A peer_pid
install_peer() { # name, go install arguments...
	local name=$1
	shift
	if command -v "$name" >/dev/null; then
		echo "$name: $(command -v "$name")"
		return
	fi
	echo "$name: not installed; go install $* (log: bench/.work/logs/install-$name.log)"
	("$@" >"$work/logs/install-$name.log" 2>&1) &
	peer_pid[$name]=$!
}
if [ -z "$SKIP_PEERS" ]; then
	# Pinned: the README's figures name these versions.
	install_peer trivy env GOEXPERIMENT=jsonv2 go install github.com/aquasecurity/trivy/cmd/trivy@v0.74.0
	install_peer osv-scanner env GOTOOLCHAIN=go1.27.3 go install github.com/google/osv-scanner/v2/cmd/osv-scanner@v2.6.0
fi

# ---------------------------------------------------------------- scangate and its database
say "scangate"
make build >"$work/logs/build.log" 2>&1 || { cat "$work/logs/build.log"; die "make build failed: scangate is what is measured"; }
sg=$root/bin/scangate
$sg version
export SCANGATE_DATA_DIR=$work/data
rm -rf "$SCANGATE_DATA_DIR"
feeds=testdata/vulndata
# The demo's import line (scripts/demo.sh).
$sg db import $feeds/go-vulndb.zip $feeds/pypa-advisory-database.zip \
	$feeds/debian $feeds/alpine $feeds/ghsa $feeds/nvd >"$work/logs/import.log" 2>&1 ||
	{ cat "$work/logs/import.log"; die "db import failed"; }
$sg db status | tail -n 3

# ---------------------------------------------------------------- the image's folders
say "image inputs"
if [ ! -d "$work/rootfs" ]; then
	[ "$(id -u)" = 0 ] || die "debootstrap needs root"
	rm -rf "$work/rootfs.tmp"
	echo "debootstrap --variant=minbase bookworm (a few minutes)"
	debootstrap --variant=minbase bookworm "$work/rootfs.tmp" http://deb.debian.org/debian \
		>"$work/logs/debootstrap.log" 2>&1 || { tail -n 20 "$work/logs/debootstrap.log"; die "debootstrap failed"; }
	# As the Debian images do: no package cache, no apt lists.
	rm -f "$work/rootfs.tmp"/var/cache/apt/archives/*.deb
	rm -rf "$work/rootfs.tmp"/var/lib/apt/lists/*
	mv "$work/rootfs.tmp" "$work/rootfs"
fi
echo "rootfs: $(grep -c '^Package:' "$work/rootfs/var/lib/dpkg/status") Debian packages"
if [ ! -x "$work/demo" ]; then
	(cd $feeds/go-demo && CGO_ENABLED=0 go build -trimpath -o "$work/demo" .) || die "go build go-demo failed"
fi
echo "go binary: $(go version "$work/demo")"
if [ ! -d "$work/app/node_modules" ]; then
	rm -rf "$work/app" && mkdir -p "$work/app"
	cp $feeds/npm/package.json $feeds/npm/package-lock.json "$work/app/"
	(cd "$work/app" && npm ci --ignore-scripts --no-audit --no-fund >"$work/logs/npm.log" 2>&1) ||
		{ tail -n 20 "$work/logs/npm.log"; die "npm ci failed"; }
fi
echo "npm app: $(find "$work/app/node_modules" -name package.json -path '*/node_modules/*/package.json' | wc -l) package.json files under node_modules"

say "images"
go build -o "$work/mkimage" ./bench/mkimage || die "go build bench/mkimage failed"
# scangate's catalog step alone, for a like-for-like comparison with an SBOM.
go build -o "$work/catalogprof" ./bench/catalogprof || die "go build bench/catalogprof failed"
mkimage() { # name, extra flags
	local n=$1
	shift
	if [ -f "$work/$n.tar" ] && [ -f "$work/$n.oci/index.json" ]; then
		echo "$n: cached ($(du -m "$work/$n.tar" | cut -f1) MB archive)"
		return
	fi
	"$work/mkimage" -rootfs "$work/rootfs" -gobin "$work/demo" -app "$work/app" -cache "$work/layers" \
		-docker-archive "$work/$n.tar" -oci "$work/$n.oci" "$@" || die "mkimage $n failed"
}
mkimage img
for s in $SIZES; do mkimage "img-$s" -size "$s"; done

# ---------------------------------------------------------------- helpers
# median_time LABEL CMD: median wall seconds of $RUNS runs (after one warm-up)
# with /usr/bin/time, when there is no hyperfine.
median_time() {
	local label=$1 cmd=$2 t=() i
	bash -c "$cmd" >/dev/null 2>&1
	for ((i = 0; i < RUNS; i++)); do
		t+=("$( { /usr/bin/time -f %e bash -c "$cmd" >/dev/null 2>/dev/null; } 2>&1 | tail -n 1)")
	done
	printf '%s\n' "${t[@]}" | sort -n | awk -v l="$label" '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%-40s median %7.2f s  (min %.2f, max %.2f, %d runs)\n", l, m, a[1], a[NR], NR}'
}

# timeit NAME LABEL CMD [LABEL CMD]...: one table, the commands side by side.
timeit() {
	local name=$1
	shift
	if command -v hyperfine >/dev/null; then
		local args=()
		while [ $# -gt 0 ]; do
			args+=(-n "$1" "$2")
			shift 2
		done
		hyperfine --style basic --runs "$RUNS" --warmup 1 --export-json "$work/out/$name.json" "${args[@]}" \
			>"$work/logs/hyperfine-$name.log" 2>&1 || { cat "$work/logs/hyperfine-$name.log"; return 1; }
		jq -r '.results[] | [.command, .median, .min, .max, (.times|length), .mean, .stddev] | @tsv' "$work/out/$name.json" |
			awk -F'\t' '{printf "%-40s median %7.2f s  (min %.2f, max %.2f, %d runs; mean %.2f ± %.2f)\n", $1, $2, $3, $4, $5, $6, $7}' | tee -a "$results"
	else
		while [ $# -gt 0 ]; do
			median_time "$1" "$2" | tee -a "$results"
			shift 2
		done
	fi
}

# check LABEL CMD: run once, keep its output; say so and fail if it fails.
check() {
	local label=$1 cmd=$2 log=$work/logs/check-${1//[^a-zA-Z0-9]/_}.log
	local rc=0
	bash -c "$cmd" >"$log" 2>&1 || rc=$?
	[ $rc = 0 ] && return 0
	note "$label: FAILED (exit $rc); last lines of $log:"
	tail -n 8 "$log" | sed 's/^/    /' | tee -a "$results"
	return 1
}

img_tar=$work/img.tar
img_oci=$work/img.oci
scan() { echo "$sg scan --format json $1 >/dev/null"; }

# ---------------------------------------------------------------- peers
trivy_ok= osv_ok=
if [ -z "$SKIP_PEERS" ]; then
	say "waiting for the peers' installs"
	for p in "${!peer_pid[@]}"; do
		if wait "${peer_pid[$p]}"; then echo "$p installed"; else
			note "$p: go install FAILED; last lines of bench/.work/logs/install-$p.log:"
			tail -n 8 "$work/logs/install-$p.log" | sed 's/^/    /' | tee -a "$results"
		fi
	done
	# trivy offline: "--format cyclonedx" turns security scanning off (trivy
	# says so), so it needs no vulnerability DB; no Java DB, no checks
	# bundle, no version check, no telemetry; an in-memory cache so that no
	# run reuses another's layer analysis.
	export TRIVY_CACHE_DIR=$work/trivy-cache
	trivy_flags="--format cyclonedx --skip-db-update --skip-java-db-update --offline-scan --skip-check-update --skip-version-check --disable-telemetry --cache-backend memory --quiet"
	trivy_sbom() { echo "trivy image $trivy_flags --input $1 --output ${2:-/dev/null}"; }
	if command -v trivy >/dev/null; then
		note "trivy: $(go version -m "$(command -v trivy)" | awk '$1 == "mod" {print $3}') ($(command -v trivy))"
		if check "trivy SBOM on docker-archive" "$(trivy_sbom "$img_tar" "$work/out/trivy-img.cdx.json")"; then
			n=$(jq '[.components[]? | select(.type == "library" or .type == "application")] | length' "$work/out/trivy-img.cdx.json")
			echo "trivy's SBOM lists $n components ($(jq -r '[.components[]?.purl // empty | split(":")[1] | split("/")[0]] | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$work/out/trivy-img.cdx.json"))"
			trivy_ok=1
			if check "trivy SBOM on OCI layout" "$(trivy_sbom "$img_oci" "$work/out/trivy-img-oci.cdx.json")"; then trivy_ok=2; fi
		fi
	else
		note "trivy: not installed (see above): no trivy figures"
	fi

	# osv-scanner offline reads <dir>/osv-scalibr/<ecosystem>/all.zip (older
	# versions: <dir>/osv-scanner/...) of OSV JSON, and refuses to scan an
	# image with packages of an ecosystem it has no database for. Go and
	# PyPI are the repository's OSV zips as they are (PyPA's YAML as JSON);
	# npm and Debian are converted by bench/osvdb from the same GHSA and
	# Debian tracker fixtures that scangate imports. --all-vulns: Debian's
	# "unimportant" ones too, as scangate reports them.
	export OSV_SCANNER_LOCAL_DB_CACHE_DIRECTORY=$work/osvdb
	if command -v osv-scanner >/dev/null; then
		note "osv-scanner: $(osv-scanner --version 2>/dev/null | head -n 1 | sed 's/.*: //') ($(command -v osv-scanner))"
		if [ ! -f "$work/osvdb/osv-scalibr/Debian/all.zip" ]; then
			rm -rf "$work/osvdb"
			go run ./bench/osvdb -out "$work/osvdb/osv-scalibr" -ghsa $feeds/ghsa \
				-debian $feeds/debian/tracker-json-bookworm-minbase.json \
				$feeds/go-vulndb.zip $feeds/pypa-advisory-database.zip &&
				ln -s osv-scalibr "$work/osvdb/osv-scanner" ||
				note "osv-scanner: could not lay out its offline databases"
		fi
		osv_cmd() { echo "osv-scanner scan image --archive --offline --all-vulns --all-packages --verbosity error --format json --output-file ${2:-/dev/null} $1"; }
		# osv-scanner exits 1 when it finds vulnerabilities: that is success here.
		if check "osv-scanner on docker-archive" "$(osv_cmd "$img_tar" "$work/out/osv-img.json"); [ \$? -le 1 ]"; then
			osv_ok=1
		fi
	else
		note "osv-scanner: not installed (see above): no osv-scanner figures"
	fi
fi

# ---------------------------------------------------------------- (a)(b)(c) side by side
say "scan time: $(du -m "$img_tar" | cut -f1) MB docker archive, $(du -sm "$img_oci" | cut -f1) MB OCI layout"
check "scangate on docker-archive" "$(scan docker-archive:"$img_tar")" || die "scangate scan failed"
check "scangate on OCI layout" "$(scan oci:"$img_oci")" || die "scangate scan failed"
$sg scan --format json docker-archive:"$img_tar" >"$work/out/scangate-img.json"
set -- "scangate docker-archive" "$(scan docker-archive:"$img_tar")" "scangate oci" "$(scan oci:"$img_oci")" \
	"scangate catalog only docker-archive" "$work/catalogprof docker-archive:$img_tar >/dev/null 2>&1" \
	"scangate catalog only oci" "$work/catalogprof oci:$img_oci >/dev/null 2>&1"
[ -n "$trivy_ok" ] && set -- "$@" "trivy SBOM docker-archive" "$(trivy_sbom "$img_tar")"
[ "$trivy_ok" = 2 ] && set -- "$@" "trivy SBOM oci" "$(trivy_sbom "$img_oci")"
[ -n "$osv_ok" ] && set -- "$@" "osv-scanner docker-archive" "$(osv_cmd "$img_tar"); [ \$? -le 1 ]"
note "-- whole scans (scangate: catalog + match + JSON report; trivy: CycloneDX SBOM only; osv-scanner: offline scan, JSON)"
timeit base "$@"
if [ -f "$work/out/base.json" ]; then
	med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median' "$work/out/base.json"; }
	ratio() { # a b label
		local a b
		a=$(med "$1") b=$(med "$2")
		[ -n "$a" ] && [ -n "$b" ] && note "$(awk -v a="$a" -v b="$b" -v l="$3" 'BEGIN {printf "%-40s %.2fx\n", l, a/b}')"
	}
	ratio "scangate docker-archive" "trivy SBOM docker-archive" "scangate / trivy SBOM, docker-archive"
	ratio "scangate oci" "trivy SBOM oci" "scangate / trivy SBOM, OCI layout"
	ratio "scangate catalog only docker-archive" "trivy SBOM docker-archive" "scangate catalog / trivy SBOM, docker"
	ratio "scangate catalog only oci" "trivy SBOM oci" "scangate catalog / trivy SBOM, OCI"
	ratio "scangate docker-archive" "osv-scanner docker-archive" "scangate / osv-scanner, docker-archive"
fi

# ---------------------------------------------------------------- time against size
say "scan time against image size"
note "-- docker-archive, by uncompressed image size (scangate whole scan; trivy SBOM only)"
args=()
for s in $SIZES; do
	args+=("scangate ${s} MB" "$(scan docker-archive:"$work/img-$s.tar")")
done
if [ -n "$trivy_ok" ]; then
	for s in $SIZES; do
		args+=("trivy SBOM ${s} MB" "$(trivy_sbom "$work/img-$s.tar")")
	done
fi
timeit sizes "${args[@]}"
# Least squares over the sizes: time = fixed + per-MB cost × size; r² near
# 1 says linear.
if [ -f "$work/out/sizes.json" ]; then
	jq -r '.results[] | [.command, .median] | @tsv' "$work/out/sizes.json" |
		awk -F'\t' '{n = split($1, w, " "); tool = w[1]; for (i = 2; i < n - 1; i++) tool = tool " " w[i]
			x = w[n-1]; y = $2; if (!(tool in cnt)) order[++k] = tool
			cnt[tool]++; sx[tool] += x; sy[tool] += y; sxx[tool] += x*x; sxy[tool] += x*y; syy[tool] += y*y }
		END { for (j = 1; j <= k; j++) { t = order[j]; m = cnt[t]
			b = (m*sxy[t] - sx[t]*sy[t]) / (m*sxx[t] - sx[t]^2); a = (sy[t] - b*sx[t]) / m
			r = (m*sxy[t] - sx[t]*sy[t]) / sqrt((m*sxx[t] - sx[t]^2) * (m*syy[t] - sy[t]^2))
			printf "%-40s %.2f s + %.2f ms per MB (%.0f MB/s beyond the fixed part), r² %.4f\n", t " fit", a, b*1000, 1/b, r*r } }' |
		tee -a "$results"
fi

# ---------------------------------------------------------------- peak memory
say "peak memory"
big=$(echo $SIZES | tr ' ' '\n' | sort -n | tail -n 1)
peak() { # label cmd
	local log=$work/logs/peak-${1//[^a-zA-Z0-9]/_}.log
	/usr/bin/time -v bash -c "$2" >/dev/null 2>"$log"
	note "$(awk -v l="$1" -F': ' '/Maximum resident set size/ {rss=$2} /Elapsed \(wall clock\)/ {w=$2} END {printf "%-40s peak RSS %d MB  (wall %s)", l, rss/1024, w}' "$log")"
}
note "-- peak RSS (/usr/bin/time -v), ${big} MB image"
peak "scangate docker-archive ${big} MB" "$(scan docker-archive:"$work/img-$big.tar")"
peak "scangate oci ${big} MB" "$(scan oci:"$work/img-$big.oci")"
[ -n "$trivy_ok" ] && peak "trivy SBOM docker-archive ${big} MB" "$(trivy_sbom "$work/img-$big.tar")"
[ -n "$osv_ok" ] && peak "osv-scanner docker-archive ${big} MB" "$(osv_cmd "$work/img-$big.tar")"

# ---------------------------------------------------------------- packages and findings
say "packages"
note "-- scangate's packages by type: $(jq -r '[.packages[].type] | group_by(.) | map("\(.[0]) \(length)") | join(", ")' "$work/out/scangate-img.json")"
if [ -n "$trivy_ok" ]; then
	go run ./bench/compare -sbom "$work/out/trivy-img.cdx.json" "$work/out/scangate-img.json" | tee -a "$results"
fi
if [ -n "$osv_ok" ]; then
	say "findings: scangate against osv-scanner, same image"
	go run ./bench/compare -osv "$work/out/osv-img.json" "$work/out/scangate-img.json" | tee -a "$results"
fi

say "results (also in bench/.work/results.txt)"
cat "$results"
