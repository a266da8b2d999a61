package scan

import "io"

// NewGzipReader inflates r as the scanner inflates gzip layers: with
// Intel ISA-L in a cgo build with -tags isal, with klauspost/compress
// otherwise. It is exported for the inflater benchmark (bench/scanbench).
func NewGzipReader(r io.Reader) (io.ReadCloser, error) { return newGzipReader(r) }
