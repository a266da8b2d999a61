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

.PHONY: build install test demo check bench fuzz clean conformance image

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

# test: every Go test, then the OCI conformance suite against the registry.
# With ISA-L, the scanner's tests also run with the pure-Go inflater.
test: check
	$(GO) test -count=1 -tags "$(TAGS)" ./...
	if [ -n "$(TAGS)" ]; then $(GO) test -count=1 ./internal/scan/; fi
	bash scripts/conformance.sh

demo: build
	./scripts/demo.sh

# conformance: the OCI distribution-spec suite against the embedded registry.
conformance:
	bash scripts/conformance.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/vulndb/

clean:
	rm -rf bin
