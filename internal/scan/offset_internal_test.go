package scan

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io"
	"strings"
	"testing"

	"github.com/scangate/scangate/internal/imagetest"
)

// offsetTar writes files of the given names and sizes in the given tar
// format, each file's bytes distinct.
func offsetTar(t testing.TB, format tar.Format, names []string, sizes []int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, name := range names {
		body := bytes.Repeat([]byte{byte('a' + i%26)}, sizes[i])
		if len(body) > 0 {
			body[0] = byte(i) // no two files alike
		}
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, Format: format}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// checkOffsets walks data as a layer and checks that
// the offset walk gives each regular file is where its bytes are in the
// stream: a layer read in place is read there (see inPlace).
func checkOffsets(t testing.TB, data []byte) {
	t.Helper()
	err := walkLayer(t, data, func(hdr *tar.Header, r io.Reader, at int64) error {
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		body, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if at <= 0 || at+int64(len(body)) > int64(len(data)) || !bytes.Equal(data[at:at+int64(len(body))], body) {
			t.Errorf("%s (%d bytes): offset %d is not where its bytes are", hdr.Name, len(body), at)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// walkLayer walks data as a layer, as unpackLayer does.
func walkLayer(t testing.TB, data []byte, fn func(hdr *tar.Header, r io.Reader, at int64) error) error {
	t.Helper()
	ls, err := newLimitedImage(imagetest.Build(t, imagetest.LayerFromBytes(t, data)), DefaultLimits).Layers()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	rc := newReadAhead(io.NopCloser(bytes.NewReader(data)), h)
	defer rc.Close()
	return ls[0].(*limitedLayer).walk(rc, h, true, fn)
}

// TestContentOffsets: the offset of each file's bytes in a layer's tar is
// right after whatever headers precede them: plain ones, PAX records
// (names over 100 bytes, non-ASCII names) and GNU long names.
func TestContentOffsets(t *testing.T) {
	names := []string{"etc/os-release", "empty", strings.Repeat("long/", 30) + "name", "ünïcode/file", "usr/bin/x"}
	sizes := []int{100, 0, 513, 4096, 70000}
	for _, f := range []tar.Format{tar.FormatUnknown, tar.FormatPAX, tar.FormatGNU} {
		if f == tar.FormatGNU {
			names[3] = "plain/file" // GNU cannot store it
		}
		checkOffsets(t, offsetTar(t, f, names, sizes))
	}
	// A sparse file's bytes are not in one piece where its content starts
	// (a map, then the data blocks): it has no offset, and is copied.
	sparse := 0
	err := walkLayer(t, imagetest.SparseBomb(t, 2, 4096), func(hdr *tar.Header, r io.Reader, at int64) error {
		if hdr.Typeflag == tar.TypeReg {
			sparse++
			if at != -1 {
				t.Errorf("sparse %s: offset %d; want none", hdr.Name, at)
			}
		}
		return nil
	})
	if err != nil || sparse != 2 {
		t.Fatalf("sparse files: %d walked, %v; want 2", sparse, err)
	}
}

// FuzzContentOffsets: any names and sizes, in any of the three formats.
func FuzzContentOffsets(f *testing.F) {
	f.Add([]byte("a\x05b\x00"+strings.Repeat("c", 120)+"\xff"), uint8(1))
	f.Fuzz(func(t *testing.T, spec []byte, format uint8) {
		var names []string
		var sizes []int
		for i, part := range bytes.Split(spec, []byte{0}) {
			if len(names) == 20 {
				break
			}
			name := strings.Trim(strings.ToValidUTF8(string(part), "x"), "/")
			if name == "" || strings.ContainsAny(name, "\x00") {
				name = "f"
			}
			names = append(names, name+"-"+string(rune('a'+i%26)))
			size := 0
			if len(part) > 0 {
				size = int(part[len(part)-1]) * 37
			}
			sizes = append(sizes, size)
		}
		if len(names) == 0 {
			return
		}
		fm := []tar.Format{tar.FormatUnknown, tar.FormatPAX, tar.FormatGNU}[int(format)%3]
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i, name := range names {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(sizes[i]), Typeflag: tar.TypeReg, Format: fm}); err != nil {
				return // a name the format cannot hold
			}
			tw.Write(bytes.Repeat([]byte{byte(i + 1)}, sizes[i])) // not 0, which the padding is
		}
		if tw.Close() != nil {
			return
		}
		checkOffsets(t, buf.Bytes())
	})
}
