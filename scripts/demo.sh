#!/usr/bin/env bash
# make demo: the seed's walkthrough (examples/seed-walkthrough/walkthrough.sh).
# The scanner on its own, the database's queries and the registry's events
# are in the README's quick start.
exec "$(dirname "$0")/../examples/seed-walkthrough/walkthrough.sh" "$@"
