//go:build !cgo || !isal

// Without the isal build tag (or without cgo), layers are inflated by
// klauspost/compress, the fastest well-kept pure-Go inflater, and about 2.4
// times slower than the ISA-L binding (see inflate_isal.go).

package scan

import (
	"io"

	kgzip "github.com/klauspost/compress/gzip"
)

// inflaterName names the inflater this build uses.
const inflaterName = "klauspost"

// newGzipReader returns a reader of the data gzip-compressed in r.
func newGzipReader(r io.Reader) (io.ReadCloser, error) {
	return kgzip.NewReader(r)
}
