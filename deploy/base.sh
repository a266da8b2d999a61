#!/usr/bin/env bash
# deploy/base.sh: make scangate-base:bookworm, the runtime base of
# scangate's own image (deploy/Dockerfile), here, with no registry on the
# internet: debootstrap's minimal Debian bookworm, plus what the server
# needs at run time and nothing to build with:
#
#   ca-certificates  TLS to feeds, webhooks and external git sources
#   git              hosted repositories' smart HTTP (internal/source runs git)
#   libisal2         Intel ISA-L, the scanner's fast gzip inflater, linked
#                    dynamically by a binary built with the isal tag
#
# The image is made once and reused: it carries a label with the hash of
# this script, and a run whose image has the same hash does nothing
# (FORCE=1 makes it again). Needs root (debootstrap), a Docker Engine and
# Debian's mirror (MIRROR, default http://deb.debian.org/debian).
#
# The seed walkthrough's bases (scripts/demoimage) are synthetic: package
# lists to scan, no programs. A server must run, hence debootstrap here,
# as bench/inputs.sh does for the scan benchmark's images.
set -euo pipefail
cd "$(dirname "$0")"
tag=${SCANGATE_BASE_IMAGE:-scangate-base:bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
packages=ca-certificates,git,libisal2
recipe=$( (cat base.sh; echo "$mirror") | sha256sum | cut -c1-16)
die() { printf 'base.sh: %s\n' "$*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "needs a running Docker Engine (dockerd)"
have=$(docker image inspect -f '{{index .Config.Labels "io.scangate.base-recipe"}}' "$tag" 2>/dev/null || true)
if [ "$have" = "$recipe" ] && [ -z "${FORCE:-}" ]; then
	echo "$tag: up to date (recipe $recipe)"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "needs debootstrap (Debian: apt-get install debootstrap; .ci/run installs it)"
work=$(mktemp -d /var/tmp/scangate-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "$tag: debootstrap --variant=minbase --include=$packages bookworm (a few minutes)"
debootstrap --variant=minbase --include="$packages" bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
	{ tail -n 20 "$work/debootstrap.log"; die "debootstrap failed"; }
r=$work/root
# As Debian's own images are: no package cache, no apt lists, no docs.
rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
	"$r"/usr/share/info/* "$r"/var/log/*.log "$r"/var/cache/debconf/*-old
# The mirror the image was made from, for anyone who adds a package later.
echo "deb $mirror bookworm main" >"$r/etc/apt/sources.list"
tar --numeric-owner -C "$r" -c . | docker import \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV LANG=C.UTF-8' \
	--change "LABEL io.scangate.base-recipe=$recipe" \
	--change 'CMD ["/bin/bash"]' \
	- "$tag" >/dev/null
echo "$tag: made ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'), recipe $recipe)"
