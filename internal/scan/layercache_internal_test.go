package scan

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io/fs"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzLayerRecord reads arbitrary bytes as a layer cache record: records
// live in the data folder and may be damaged or planted. No panic, no
// allocation beyond what the record's own counts allow, and a record that
// reads back writes again to a record that reads back the same.
func FuzzLayerRecord(f *testing.F) {
	diffID := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	big := strings.Repeat("x", inMemoryMax+10)
	es := []entry{
		{name: "etc", kind: tar.TypeDir, mode: fs.ModeDir | 0o755, mtime: time.Unix(1700000000, 0)},
		{name: "etc/os-release", kind: tar.TypeReg, mode: 0o644, size: 10, body: content{kept: true, data: []byte("ID=debian\n"), size: 10}},
		{name: "usr/bin/big", kind: tar.TypeReg, mode: 0o755, size: int64(len(big))},
		{name: "lib", kind: tar.TypeSymlink, link: "usr/lib"},
		{name: "app/node_modules/x", kind: kindWhiteout},
		{name: "app", kind: kindOpaque},
	}
	b := &blob{}
	defer b.close()
	c, err := b.store(strings.NewReader(big), int64(len(big)))
	if err != nil {
		f.Fatal(err)
	}
	es[2].body = c
	var rec bytes.Buffer
	extra := []entry{{name: "usr/lib/libz.so.1.2.13", kind: tar.TypeReg, size: 3, body: content{kept: true, data: []byte("elf"), size: 3}}}
	if err := encodeRecord(&rec, diffID, es, extra, layerTotals{bytes: 100000, files: 8, largest: int64(len(big))}, b); err != nil {
		f.Fatal(err)
	}
	f.Add(rec.Bytes(), false)
	f.Add(rec.Bytes()[:len(rec.Bytes())/2], true)
	f.Add([]byte(recordMagic), true)
	f.Fuzz(func(t *testing.T, data []byte, fixSum bool) {
		if fixSum && len(data) >= 4 {
			// Past the checksum, to where the parsing is.
			body := data[:len(data)-4]
			binary.LittleEndian.PutUint32(data[len(body):], crc32.Checksum(body, crcTable))
		}
		b := &blob{}
		defer b.close()
		var tot layerTotals
		got, gotExtra, err := decodeRecord(data, false, diffID, func(lt layerTotals) error {
			tot = lt
			return nil
		})
		if err != nil {
			return
		}
		var again bytes.Buffer
		if err := encodeRecord(&again, diffID, got, gotExtra, tot, b); err != nil {
			t.Fatalf("a record that read back does not write: %v", err)
		}
		// Varints have more than one spelling; what is written is one.
		got2, extra2, err := decodeRecord(again.Bytes(), false, diffID, func(layerTotals) error { return nil })
		if err != nil {
			t.Fatalf("a record written cannot be read: %v", err)
		}
		var third bytes.Buffer
		if err := encodeRecord(&third, diffID, got2, extra2, tot, b); err != nil || !bytes.Equal(third.Bytes(), again.Bytes()) {
			t.Fatalf("written, read and written again, the record changed (%v)", err)
		}
	})
}
