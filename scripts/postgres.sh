#!/usr/bin/env bash
# postgres.sh: a private PostgreSQL cluster for scangate's tests.
#
#   scripts/postgres.sh start [DIR] [PORT]   init (once) and start; prints the URL
#   scripts/postgres.sh stop  [DIR]
#
# The cluster listens on 127.0.0.1 only, trusts local connections (it is
# a throwaway test server) and keeps its sockets in DIR. Tests use it
# through SCANGATE_TEST_DATABASE=<the printed URL>; each test makes its own
# database in it (internal/storetest). PostgreSQL refuses to run as root,
# so as root the cluster runs as the postgres user (Debian's package).
set -euo pipefail
cmd=${1:-start}
dir=${2:-/tmp/scangate-pg}
port=${3:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "postgres.sh: no PostgreSQL server (Debian: apt-get install postgresql)" >&2; exit 1; }
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
case $cmd in
start)
	if [ ! -f "$dir/PG_VERSION" ]; then
		mkdir -p "$dir"
		[ "$(id -u)" = 0 ] && chown postgres "$dir"
		"${as[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-sync >"$dir.initdb.log" 2>&1 ||
			{ cat "$dir.initdb.log" >&2; exit 1; }
	fi
	if ! "${as[@]}" "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
		# fsync off: a test server loses nothing worth keeping in a crash.
		"${as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/log" -w -o \
			"-k $dir -c listen_addresses=127.0.0.1 -p $port -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
			start >/dev/null
	fi
	echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
	;;
stop)
	"${as[@]}" "$bin/pg_ctl" -D "$dir" -m fast stop >/dev/null
	;;
*)
	echo "usage: $0 start|stop [DIR] [PORT]" >&2
	exit 2
	;;
esac
