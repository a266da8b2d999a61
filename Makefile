# scangate: `make demo` runs the whole flow built so far; `make test` runs every test.
GO      ?= go
BIN     := bin/scangate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
# TAGS: isal (Intel ISA-L's inflater, 2.4x faster on gzip layers) when its
# headers are installed (Debian: libisal-dev); else the pure-Go inflater.
TAGS    ?= $(shell test -f /usr/include/isa-l/igzip_lib.h && echo isal)

# PREFIX: where make install puts the binary (PREFIX/bin/scangate); make
# PREFIX=$$HOME/.local install needs no root.
PREFIX  ?= /usr/local

.PHONY: build install test test-postgres demo check bench fuzz clean conformance image

build:
	$(GO) build -trimpath -tags "$(TAGS)" -ldflags "-X github.com/scangate/scangate/internal/cli.Version=$(VERSION)" -o $(BIN) ./cmd/scangate

# install: the binary on PATH, so that scangate (and git's credential
# helper, '!scangate git-credential') is found from anywhere.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/scangate

# image: scangate's own container image (deploy/Dockerfile) on the local
# Docker Engine, from a Debian base made here by deploy/base.sh (once; it is
# reused while the script is unchanged). See the README's "Running at scale".
IMAGE ?= scangate:$(VERSION)
image: build
	bash deploy/base.sh
	docker build -f deploy/Dockerfile -t $(IMAGE) -t scangate:latest .

# check: formatting, vet and a tidy go.mod, as CI requires.
check:
	@test -z "$$(gofmt -l cmd internal scripts bench examples)" || { echo "gofmt needed:"; gofmt -l cmd internal scripts bench examples; exit 1; }
	$(GO) vet -tags "$(TAGS)" ./...
	$(GO) mod tidy -diff

# PG_URL: the private PostgreSQL cluster scripts/postgres.sh starts (on
# 127.0.0.1:55432, data in /tmp/scangate-pg), where tests make their own
# databases. PG_PACKAGES: every package whose tests use the database (through
# internal/storetest, internal/servertest or internal/vulndbtest); they run
# a second time with SCANGATE_TEST_DATABASE set (see README, "Tests").
PG_URL      ?= postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable
PG_PACKAGES ?= ./internal/store/ ./internal/lease/ ./internal/jobs/ ./internal/auth/ ./internal/console/ ./internal/api/ ./internal/events/ \
	./internal/pipeline/ ./internal/source/ ./internal/cli/ ./internal/server/ ./internal/build/ \
	./internal/registry/ ./internal/engine/docker/ ./internal/apptest/ ./internal/vulndb/ ./internal/secret/ ./internal/scan/ \
	./internal/e2e/...

# PG_SKIP: tests that use PostgreSQL whatever the run's database (the
# replicas' test), so that the second pass does not run them again.
PG_SKIP     ?= ^TestReplicasSurviveSIGKILL$$

# TEST_TIMEOUT: go test's limit on one package's test binary. Its default,
# 10 minutes, is too near internal/e2e's run on a loaded 2-core machine
# whose engine has no base image yet (deploy/base.sh runs debootstrap):
# one CI run passed in 6 minutes, another was cut off at 10.
TEST_TIMEOUT ?= 30m

# test: every Go test (PostgreSQL's own tests included: the cluster is
# started first), the database's packages again on PostgreSQL, then the
# OCI conformance suite against the registry. With ISA-L, the scanner's
# tests also run with the pure-Go inflater.
test: check
	bash scripts/postgres.sh start >/dev/null
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -tags "$(TAGS)" ./...
	if [ -n "$(TAGS)" ]; then $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./internal/scan/; fi
	SCANGATE_TEST_DATABASE='$(PG_URL)' $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -tags "$(TAGS)" -skip '$(PG_SKIP)' $(PG_PACKAGES)
	bash scripts/conformance.sh
	CONFORMANCE_STORAGE=s3 bash scripts/conformance.sh

# test-postgres: only the PostgreSQL pass.
test-postgres:
	bash scripts/postgres.sh start >/dev/null
	SCANGATE_TEST_DATABASE='$(PG_URL)' $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -tags "$(TAGS)" -skip '$(PG_SKIP)' $(PG_PACKAGES)

demo: build
	./scripts/demo.sh

# conformance: the OCI distribution-spec suite against the embedded registry.
conformance:
	bash scripts/conformance.sh
	CONFORMANCE_STORAGE=s3 bash scripts/conformance.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/vulndb/

clean:
	rm -rf bin
