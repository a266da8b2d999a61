# scangate: `make demo` runs the whole flow built so far; `make test` runs every test.
GO      ?= go
BIN     := bin/scangate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: build test demo check bench fuzz clean

build:
	$(GO) build -trimpath -ldflags "-X github.com/scangate/scangate/internal/cli.Version=$(VERSION)" -o $(BIN) ./cmd/scangate

# check: formatting, vet and a tidy go.mod, as CI requires.
check:
	@test -z "$$(gofmt -l cmd internal scripts bench)" || { echo "gofmt needed:"; gofmt -l cmd internal scripts bench; exit 1; }
	$(GO) vet ./...
	$(GO) mod tidy -diff

test: check
	$(GO) test -count=1 ./...

demo: build
	./scripts/demo.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/vulndb/

clean:
	rm -rf bin
