package scan

import (
	"io"

	"github.com/google/osv-scalibr/extractor/filesystem/language/golang/gobinary"
	"github.com/google/osv-scalibr/extractor/filesystem/language/rust/cargoauditable"
)

// ELFChecks says, for the external tests, whether the Go-binary and the
// cargo-auditable extractors are passed over for r (certainlyNone).
func ELFChecks(r io.ReaderAt) (noGo, noRust bool) {
	none := certainlyNone(r)
	return none&memoBit(gobinary.Name) != 0, none&memoBit(cargoauditable.Name) != 0
}
