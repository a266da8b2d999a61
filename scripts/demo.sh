#!/usr/bin/env bash
# The demo of what scangate does so far: build the vulnerability database
# from the bundled real feeds (no network), ask it what a scan asks, then
# scan an image and gate it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/scangate
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
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
