package image

import (
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WithProgress returns img with layers that call report with the number of
// bytes each read delivers (compressed or not, as the reader asks), for a
// progress bar.
func WithProgress(img v1.Image, report func(n int64)) v1.Image {
	return &progressImage{Image: img, report: report}
}

type progressImage struct {
	v1.Image
	report func(int64)
}

func (p *progressImage) Layers() ([]v1.Layer, error) {
	ls, err := p.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := make([]v1.Layer, len(ls))
	for i, l := range ls {
		out[i] = &progressLayer{Layer: l, report: p.report}
	}
	return out, nil
}

type progressLayer struct {
	v1.Layer
	report func(int64)
}

// Unwrap returns the layer it reports on, so that a reader can still tell
// what kind of layer it has.
func (l *progressLayer) Unwrap() v1.Layer { return l.Layer }

func (l *progressLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, err
	}
	pr := &progressReader{ReadCloser: rc, report: l.report}
	if at, ok := rc.(readerInPlace); ok {
		return &inPlaceReader{progressReader: pr, at: at}, nil
	}
	return pr, nil
}

// readerInPlace is a stored layer the scanner may read again at offsets
// (see sectionCloser).
type readerInPlace interface {
	io.ReaderAt
	Unchanged() error
}

// inPlaceReader reports the stream's progress and keeps the layer's reads
// in place, which the progress does not count again.
type inPlaceReader struct {
	*progressReader
	at readerInPlace
}

func (r *inPlaceReader) ReadAt(p []byte, off int64) (int, error) { return r.at.ReadAt(p, off) }
func (r *inPlaceReader) Unchanged() error                        { return r.at.Unchanged() }

func (l *progressLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, err
	}
	return &progressReader{ReadCloser: rc, report: l.report}, nil
}

type progressReader struct {
	io.ReadCloser
	report func(int64)
}

func (r *progressReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.report(int64(n))
	}
	return n, err
}
