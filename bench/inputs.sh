#!/usr/bin/env bash
# bench/inputs.sh: the scan benchmark's images, made the ordinary way: a
# Debian root filesystem from debootstrap, a Go binary, an npm app, Python
# dist-info folders and Debian's Java archives, put together by the Docker
# Engine (`docker import`, `docker build`) and written by `docker save`
# itself. See bench/README.md ("The images").
#
#   bench/inputs.sh            make what is missing (as root: apt-get, debootstrap)
#   FORCE=1 bench/inputs.sh    make the images again (the parts are kept)
#
# Everything goes in $SCANGATE_BENCH_CACHE (default ~/.cache/scangate-bench),
# outside the repository, and is reused:
#
#   big.tar      `docker save`, one layer: bookworm minbase + Go + npm + Python (~150 MB)
#   big.oci/     the same image as an OCI layout with gzip layers
#   multi.tar    `docker save`, 11 layers: slimmed bookworm + Go + npm + jars + Python
#   small.tar    `docker save`, 5 layers: a distroless-style Debian base + Go + npm + Python + a jar
#   1g.tar       `docker save`, 3 layers: big + 900 MB of incompressible files (peak memory)
#   rebuilt.tar  multi with its top layer changed (lodash upgraded, minimist deleted): the layer cache
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cache=${SCANGATE_BENCH_CACHE:-$HOME/.cache/scangate-bench}
FORCE=${FORCE:-}
mkdir -p "$cache/logs" "$cache/parts"
die() { printf 'inputs: %s\n' "$*" >&2; exit 1; }
command -v docker >/dev/null && docker info >/dev/null 2>&1 || die "needs a running Docker Engine (dockerd)"

need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing ${need[*]}: run as root, or install them"
	apt-get update -qq >"$cache/logs/apt.log" 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >>"$cache/logs/apt.log" 2>&1
fi

# ---------------------------------------------------------------- parts
parts=$cache/parts
feeds=$root/testdata/vulndata
if [ ! -d "$cache/rootfs" ]; then
	[ "$(id -u)" = 0 ] || die "debootstrap needs root"
	rm -rf "$cache/rootfs.tmp"
	echo "debootstrap --variant=minbase bookworm (a few minutes)"
	debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" http://deb.debian.org/debian >"$cache/logs/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$cache/logs/debootstrap.log"; die "debootstrap failed"; }
	# As Debian's images are: no package cache, no apt lists.
	rm -f "$cache/rootfs.tmp"/var/cache/apt/archives/*.deb
	rm -rf "$cache/rootfs.tmp"/var/lib/apt/lists/*
	mv "$cache/rootfs.tmp" "$cache/rootfs"
fi
[ -x "$parts/demo" ] || (cd "$feeds/go-demo" && CGO_ENABLED=0 go build -trimpath -o "$parts/demo" .)
if [ ! -d "$parts/app/node_modules" ]; then
	rm -rf "$parts/app" && mkdir -p "$parts/app"
	cp "$feeds/npm/package.json" "$feeds/npm/package-lock.json" "$parts/app/"
	(cd "$parts/app" && npm ci --ignore-scripts --no-audit --no-fund >"$cache/logs/npm.log" 2>&1) ||
		{ tail -n 20 "$cache/logs/npm.log"; die "npm ci failed"; }
fi
if [ ! -d "$parts/jars/usr/share/java" ]; then
	rm -rf "$parts/debs" "$parts/jars" && mkdir -p "$parts/debs" "$parts/jars"
	(cd "$parts/debs" && apt-get download libcommons-lang3-java libjackson2-databind-java libjackson2-core-java \
		libguava-java libcommons-io-java >"$cache/logs/jars.log" 2>&1) || die "apt-get download of the jars failed"
	for d in "$parts"/debs/*.deb; do dpkg-deb -x "$d" "$parts/jars"; done
fi
if [ ! -d "$parts/python" ]; then
	# dist-info folders as pip leaves them (a scanner reads METADATA).
	for p in requests:2.25.0 urllib3:1.26.4 jinja2:2.11.2; do
		n=${p%%:*} v=${p##*:} d=$parts/python/usr/lib/python3/dist-packages/$n-$v.dist-info
		mkdir -p "$d"
		printf 'Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\n' "$n" "$v" "$n" >"$d/METADATA"
		echo pip >"$d/INSTALLER"
	done
fi

# ---------------------------------------------------------------- images
tag=scangate-bench
built() { [ -z "$FORCE" ] && [ -s "$cache/$1" ]; }
save() { # image file
	docker save -o "$cache/$2.tmp" "$1" && mv "$cache/$2.tmp" "$cache/$2"
	echo "$2: $(du -m "$cache/$2" | cut -f1) MB, $(tar -xOf "$cache/$2" manifest.json | jq '.[0].Layers | length') layers"
}
ctx=$cache/ctx
fresh_ctx() { rm -rf "$ctx" && mkdir -p "$ctx"; }

# big: one layer, `docker import` of the whole tree.
if ! built big.tar; then
	fresh_ctx
	mkdir -p "$ctx/tree/usr/local/bin"
	cp -a "$cache/rootfs/." "$ctx/tree/"
	cp "$parts/demo" "$ctx/tree/usr/local/bin/demo"
	cp -a "$parts/app" "$ctx/tree/app"
	cp -a "$parts/python/." "$ctx/tree/"
	tar -C "$ctx/tree" -c . | docker import - "$tag/big:1" >/dev/null
	save "$tag/big:1" big.tar
fi
if ! built big.oci/index.json; then
	rm -rf "$cache/big.oci"
	go run ./bench/ocilayout "docker-archive:$cache/big.tar" "$cache/big.oci" || die "OCI layout of big.tar failed"
	echo "big.oci: $(du -sm "$cache/big.oci" | cut -f1) MB"
fi

# multi: 11 layers by `docker build` on a slimmed Debian base.
if ! built multi.tar; then
	fresh_ctx
	mkdir -p "$ctx/base"
	cp -a "$cache/rootfs/." "$ctx/base/"
	# As slim images are: no documentation, manual pages or locales.
	rm -rf "$ctx/base"/usr/share/{doc,man,locale,info,i18n} "$ctx/base"/usr/lib/x86_64-linux-gnu/gconv
	tar -C "$ctx/base" -c . | docker import - "$tag/slim:1" >/dev/null
	rm -rf "$ctx/base"
	mkdir -p "$ctx/jars" "$ctx/mvn"
	cp -a "$parts/jars/usr/share/java/." "$ctx/jars/"
	cp -a "$parts/app" "$ctx/app"
	mkdir -p "$ctx/python" && cp -a "$parts/python/." "$ctx/python/"
	cp "$parts/demo" "$ctx/demo"
	cat >"$ctx/Dockerfile" <<-EOF
		FROM $tag/slim:1
		COPY demo /usr/local/bin/demo
		COPY app/package.json app/package-lock.json /app/
		COPY app/node_modules/lodash /app/node_modules/lodash
		COPY app/node_modules /app/node_modules
		COPY python/ /
		COPY jars/commons-lang3-3.12.0.jar jars/commons-io-2.11.0.jar /usr/share/java/
		COPY jars/guava-31.1-jre.jar /usr/share/java/
		COPY jars/jackson-core-2.14.1.jar /usr/share/java/
		COPY jars/jackson-databind-2.14.0.jar /usr/share/java/
		RUN rm -rf /var/log/* /var/cache/debconf/*-old
		LABEL org.opencontainers.image.title=multi
	EOF
	DOCKER_BUILDKIT=0 docker build -q -t "$tag/multi:1" "$ctx" >"$cache/logs/build-multi.log" 2>&1 ||
		{ cat "$cache/logs/build-multi.log"; die "docker build multi failed"; }
	save "$tag/multi:1" multi.tar
	# rebuilt: the same image with one more small layer that upgrades lodash
	# and deletes minimist (a whiteout): what a pipeline's next build is.
	mkdir -p "$ctx/up/lodash"
	printf '{"name": "lodash", "version": "4.17.21"}\n' >"$ctx/up/lodash/package.json"
	cat >"$ctx/Dockerfile" <<-EOF
		FROM $tag/multi:1
		COPY up/lodash/package.json /app/node_modules/lodash/package.json
		RUN rm -rf /app/node_modules/minimist
	EOF
	DOCKER_BUILDKIT=0 docker build -q -t "$tag/rebuilt:1" "$ctx" >"$cache/logs/build-rebuilt.log" 2>&1 ||
		{ cat "$cache/logs/build-rebuilt.log"; die "docker build rebuilt failed"; }
	save "$tag/rebuilt:1" rebuilt.tar
fi

# small: 5 layers, a distroless-style base (os-release, status.d, libc).
if ! built small.tar; then
	fresh_ctx
	b=$ctx/base
	mkdir -p "$b/etc" "$b/var/lib/dpkg/status.d" "$b/usr/lib/x86_64-linux-gnu" "$b/lib64"
	cp -L "$cache/rootfs/etc/os-release" "$b/etc/os-release"
	cp "$cache/rootfs/etc/passwd" "$cache/rootfs/etc/group" "$b/etc/"
	for p in base-files libc6 netbase tzdata; do
		awk -v p="$p" 'BEGIN {RS=""; ORS="\n\n"} $0 ~ "(^|\n)Package: " p "\n" {print}' "$cache/rootfs/var/lib/dpkg/status" >"$b/var/lib/dpkg/status.d/$p"
	done
	cp -a "$cache/rootfs/usr/lib/x86_64-linux-gnu/"{libc.so.6,ld-linux-x86-64.so.2,libm.so.6,libpthread.so.0,libdl.so.2} "$b/usr/lib/x86_64-linux-gnu/"
	mkdir -p "$b/usr/share" && cp -a "$cache/rootfs/usr/share/zoneinfo" "$b/usr/share/"
	tar -C "$b" -c . | docker import - "$tag/distroless:1" >/dev/null
	mkdir -p "$ctx/app/node_modules"
	cp -a "$parts/app/node_modules/"{lodash,minimist,qs} "$ctx/app/node_modules/"
	mkdir -p "$ctx/python" && cp -a "$parts/python/." "$ctx/python/"
	cp "$parts/demo" "$ctx/demo"
	cp "$parts/jars/usr/share/java/commons-lang3-3.12.0.jar" "$ctx/"
	cat >"$ctx/Dockerfile" <<-EOF
		FROM $tag/distroless:1
		COPY demo /usr/local/bin/demo
		COPY app /app
		COPY python/ /
		COPY commons-lang3-3.12.0.jar /usr/share/java/
	EOF
	DOCKER_BUILDKIT=0 docker build -q -t "$tag/small:1" "$ctx" >"$cache/logs/build-small.log" 2>&1 ||
		{ cat "$cache/logs/build-small.log"; die "docker build small failed"; }
	save "$tag/small:1" small.tar
fi

# 1g: big plus two layers of incompressible files, about 1 GB in all: peak
# memory must not grow with the image.
if ! built 1g.tar; then
	fresh_ctx
	mkdir -p "$ctx/pad1" "$ctx/pad2"
	for i in $(seq 1 28); do head -c 16M /dev/urandom >"$ctx/pad1/$i.bin"; done
	for i in $(seq 1 28); do head -c 16M /dev/urandom >"$ctx/pad2/$i.bin"; done
	printf 'FROM %s\nCOPY pad1 /opt/pad1\nCOPY pad2 /opt/pad2\n' "$tag/big:1" >"$ctx/Dockerfile"
	DOCKER_BUILDKIT=0 docker build -q -t "$tag/1g:1" "$ctx" >"$cache/logs/build-1g.log" 2>&1 ||
		{ cat "$cache/logs/build-1g.log"; die "docker build 1g failed"; }
	save "$tag/1g:1" 1g.tar
fi
rm -rf "$ctx"
echo "images in $cache (the Docker Engine keeps $tag/{big,multi,rebuilt,small,1g}:1 for docker: scans)"
