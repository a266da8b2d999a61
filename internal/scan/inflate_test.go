package scan

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/scangate/scangate/internal/imagetest"
)

// These tests run against whichever inflater the build has (inflaterName):
// ISA-L with cgo, klauspost's without. compress/gzip is the reference.

func gz(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// inflate reads all of stream through newGzipReader, the source wrapped by
// wrap and the reads of size chunk (0: io.ReadAll's).
func inflate(stream []byte, wrap func(io.Reader) io.Reader, chunk int) ([]byte, error) {
	var src io.Reader = bytes.NewReader(stream)
	if wrap != nil {
		src = wrap(src)
	}
	zr, err := newGzipReader(src)
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	if chunk == 0 {
		return io.ReadAll(zr)
	}
	var out []byte
	buf := make([]byte, chunk)
	for {
		n, err := zr.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

func reference(stream []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(stream))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// textish is compressible: words from a small alphabet, with repeats
// far back enough to use the whole 32 KiB window.
func textish(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	words := []string{"package ", "Version: ", "1.2.3-4 ", "libc6 ", "Depends: ", "\n", "amd64 ", "Status: install ok installed\n"}
	var b bytes.Buffer
	for b.Len() < n {
		if b.Len() > 40000 && r.IntN(8) == 0 {
			off := b.Len() - 1 - r.IntN(32000)
			b.Write(slices.Clone(b.Bytes()[off : off+min(200, b.Len()-off)]))
			continue
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func TestInflateRoundTrip(t *testing.T) {
	t.Logf("inflater: %s", inflaterName)
	inputs := map[string][]byte{
		"empty":         {},
		"one-byte":      {'x'},
		"zeros-3MiB":    make([]byte, 3<<20),
		"random-1MiB":   randomBytes(1, 1<<20),
		"random-odd":    randomBytes(2, 300001),
		"text-2MiB":     textish(3, 2<<20),
		"text-short":    textish(4, 777),
		"input-buffers": textish(5, 3*isalInputSizeForTests+17),
	}
	wraps := map[string]func(io.Reader) io.Reader{
		"plain":    nil,
		"one-byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"data-err": iotest.DataErrReader,
	}
	for name, data := range inputs {
		for _, level := range []int{gzip.NoCompression, gzip.HuffmanOnly, gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression} {
			stream := gz(t, data, level)
			for wname, wrap := range wraps {
				if wname == "one-byte" && len(stream) > 100000 {
					continue // slow, and the small inputs cover it
				}
				for _, chunk := range []int{0, 1, 4093} {
					if chunk == 1 && len(data) > 100000 {
						continue
					}
					got, err := inflate(stream, wrap, chunk)
					if err != nil {
						t.Fatalf("%s level %d, source %s, reads of %d: %v", name, level, wname, chunk, err)
					}
					if !bytes.Equal(got, data) {
						t.Fatalf("%s level %d, source %s, reads of %d: %d bytes differ from the %d written", name, level, wname, chunk, len(got), len(data))
					}
				}
			}
		}
	}
}

// isalInputSizeForTests is more than any inflater's input buffer here, so
// that a stream spans several refills.
const isalInputSizeForTests = 300 << 10

// TestInflateRealLayers: image layers as go-containerregistry and
// klauspost's writer compress them, inflated as compress/gzip does.
func TestInflateRealLayers(t *testing.T) {
	_, layers := imagetest.BookwormApp(t)
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		stream, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		want, err := reference(stream)
		if err != nil {
			t.Fatal(err)
		}
		got, err := inflate(stream, nil, 0)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("layer %d: %d bytes, %v; want %d bytes", i+1, len(got), err, len(want))
		}
		for _, level := range []int{kgzip.HuffmanOnly, kgzip.BestSpeed, 5, kgzip.BestCompression} {
			var b bytes.Buffer
			w, _ := kgzip.NewWriterLevel(&b, level)
			w.Write(want)
			w.Close()
			got, err := inflate(b.Bytes(), nil, 0)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("layer %d, klauspost level %d: %d bytes, %v; want %d bytes", i+1, level, len(got), err, len(want))
			}
		}
	}
}

// gzipMember writes a member with every optional header field, and a
// header CRC.
func gzipMember(data []byte) []byte {
	var deflated bytes.Buffer
	w, _ := gzip.NewWriterLevel(&deflated, gzip.BestSpeed)
	w.Write(data)
	w.Close()
	body := deflated.Bytes()[10 : deflated.Len()-8] // compress/gzip's header is 10 bytes here
	h := []byte{0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 1, 2, 3, 4, 0, 3}
	h = append(h, 5, 0, 'A', 'B', 2, 0, 'x')
	h = append(h, "layer.tar\x00"...)
	h = append(h, "a comment\x00"...)
	h = binary.LittleEndian.AppendUint16(h, uint16(crc32.ChecksumIEEE(h)))
	h = append(h, body...)
	h = binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(data))
	return binary.LittleEndian.AppendUint32(h, uint32(len(data)))
}

func TestInflateMultiMember(t *testing.T) {
	a, b, c := textish(6, 100000), randomBytes(7, 70000), textish(8, 5)
	for _, tc := range []struct {
		name   string
		stream []byte
		want   []byte
	}{
		{"three", slices.Concat(gz(t, a, 6), gz(t, b, 1), gz(t, c, 9)), slices.Concat(a, b, c)},
		{"empty-members", slices.Concat(gz(t, nil, 6), gz(t, a, 6), gz(t, nil, 1), gz(t, nil, 0)), a},
		{"header-fields", slices.Concat(gzipMember(a), gzipMember(c), gz(t, b, 6), gzipMember(nil)), slices.Concat(a, c, b)},
		{"many-small", bytes.Repeat(gz(t, c, 6), 500), bytes.Repeat(c, 500)},
	} {
		if want, err := reference(tc.stream); err != nil || !bytes.Equal(want, tc.want) {
			t.Fatalf("%s: compress/gzip reads it as %d bytes, %v", tc.name, len(want), err)
		}
		// One byte at a time splits every header: ISA-L's own header
		// reader got the header CRC wrong then.
		for wname, wrap := range map[string]func(io.Reader) io.Reader{"whole": nil, "one-byte": iotest.OneByteReader} {
			for _, chunk := range []int{0, 7} {
				got, err := inflate(tc.stream, wrap, chunk)
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Errorf("%s (source %s, reads of %d): %d bytes, %v; want %d bytes", tc.name, wname, chunk, len(got), err, len(tc.want))
				}
			}
		}
	}
}

// TestInflateTruncated: a stream cut anywhere fails; it never ends
// cleanly short.
func TestInflateTruncated(t *testing.T) {
	data := textish(9, 60000)
	streams := map[string][]byte{
		"one-member":  gz(t, data, 6),
		"two-members": slices.Concat(gz(t, data[:1000], 6), gzipMember(data[1000:])),
		"stored":      gz(t, data[:5000], gzip.NoCompression),
	}
	for name, stream := range streams {
		for cut := range len(stream) {
			if len(stream) > 5000 && cut > 200 && cut < len(stream)-200 && cut%97 != 0 {
				continue
			}
			if name == "two-members" && cut == len(gz(t, data[:1000], 6)) {
				continue // a whole first member is a whole stream
			}
			got, err := inflate(stream[:cut], nil, 0)
			if err == nil {
				t.Fatalf("%s cut to %d of %d bytes: %d bytes and no error", name, cut, len(stream), len(got))
			}
		}
	}
}

func TestInflateCorrupt(t *testing.T) {
	data := textish(10, 200000)
	stream := gz(t, data, 6)
	flip := func(i int, mask byte) []byte {
		b := slices.Clone(stream)
		b[i] ^= mask
		return b
	}
	n := len(stream)
	for _, tc := range []struct {
		name   string
		stream []byte
		want   error // nil: any error
	}{
		{"crc", flip(n-8, 0x01), gzip.ErrChecksum},
		{"crc-high", flip(n-5, 0x80), gzip.ErrChecksum},
		{"isize", flip(n-4, 0x01), gzip.ErrChecksum},
		{"isize-high", flip(n-1, 0x40), gzip.ErrChecksum},
		{"magic", flip(0, 0xff), gzip.ErrHeader},
		{"method", flip(2, 0x01), gzip.ErrHeader},
		{"deflate-early", flip(20, 0x55), nil},
		{"deflate-middle", flip(n/2, 0x10), nil},
		{"deflate-late", flip(n-20, 0x04), nil},
		{"trailing-garbage", slices.Concat(stream, []byte("garbage after the member")), nil},
		{"trailing-zeros", slices.Concat(stream, make([]byte, 1024)), nil},
		{"trailing-short", slices.Concat(stream, []byte{0x1f}), nil},
		{"garbage", bytes.Repeat([]byte{0xde, 0xad}, 5000), nil},
		{"empty", nil, nil},
	} {
		if _, err := reference(tc.stream); err == nil {
			t.Fatalf("%s: compress/gzip reads it with no error", tc.name)
		}
		got, err := inflate(tc.stream, nil, 0)
		if err == nil {
			t.Errorf("%s: %d bytes and no error", tc.name, len(got))
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, err, tc.want)
		}
		// The error sticks.
		if zr, err := newGzipReader(bytes.NewReader(tc.stream)); err == nil {
			io.Copy(io.Discard, zr)
			if n, err := zr.Read(make([]byte, 10)); n != 0 || err == nil {
				t.Errorf("%s: a read after the error gave %d bytes, %v", tc.name, n, err)
			}
			zr.Close()
		}
	}
}

// TestInflateSourceError: the source's own error comes through as it is.
func TestInflateSourceError(t *testing.T) {
	stream := gz(t, textish(11, 100000), 6)
	boom := errors.New("disk on fire")
	src := io.MultiReader(bytes.NewReader(stream[:len(stream)/2]), iotest.ErrReader(boom))
	zr, err := newGzipReader(src)
	if err != nil {
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		return
	}
	defer zr.Close()
	if _, err := io.ReadAll(zr); !errors.Is(err, boom) {
		t.Fatalf("got %v; want %v", err, boom)
	}
}

// FuzzInflate: on any input, newGzipReader and compress/gzip agree on
// whether it is a valid gzip stream and, if it is, on its content.
func FuzzInflate(f *testing.F) {
	f.Add(gz(f, []byte("hello, layer"), 6))
	f.Add(gz(f, textish(12, 5000), 9))
	f.Add(gz(f, randomBytes(13, 3000), 0))
	f.Add(gz(f, textish(14, 3000), gzip.HuffmanOnly))
	f.Add(slices.Concat(gz(f, []byte("a"), 1), gzipMember([]byte("bb")), gz(f, nil, 6)))
	f.Add(gzipMember(textish(15, 2000)))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, stream []byte) {
		want, werr := reference(stream)
		if len(want) > 64<<20 {
			return
		}
		got, err := inflate(stream, nil, 0)
		if werr == nil && err != nil {
			t.Fatalf("compress/gzip reads %d bytes; %s fails: %v", len(want), inflaterName, err)
		}
		if werr != nil && err == nil {
			t.Fatalf("compress/gzip fails (%v); %s reads %d bytes with no error", werr, inflaterName, len(got))
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("%s reads %d bytes, compress/gzip %d, and they differ", inflaterName, len(got), len(want))
		}
	})
}
