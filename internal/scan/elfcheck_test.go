package scan_test

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"errors"
	"testing"

	rustaudit "github.com/rust-secure-code/go-rustaudit"

	"github.com/scangate/scangate/internal/scan"
)

// elfSeeds are real executables (a Go one built here, and this machine's
// true(1)), and each with a section renamed so that the libraries look
// elsewhere or find what they look for: the Go binary without its
// .go.buildinfo section (debug/buildinfo then searches the data segment,
// and finds the build information there), the C one with a .dep-v0
// section (go-rustaudit then reads it).
func elfSeeds(t testing.TB) map[string][]byte {
	goBin, cBin := []byte(goBinary(t, t.TempDir())), []byte(cBinary(t))
	renamed := func(data []byte, from, to string) []byte {
		out := bytes.Replace(data, []byte(from+"\x00"), []byte(to+"\x00"), 1)
		if bytes.Equal(out, data) {
			t.Fatalf("no section %s to rename", from)
		}
		return out
	}
	return map[string][]byte{
		"go":                   goBin,
		"c":                    cBin,
		"go, no .go.buildinfo": renamed(goBin, ".go.buildinfo", ".go.buildinfX"),
		"c, .dep-v0":           renamed(cBin, ".interp", ".dep-v0"),
	}
}

// TestELFChecks: a C executable is passed over by both executable
// extractors without parsing it; a Go one, or one with a cargo-auditable
// section, is not, even when its section is renamed.
func TestELFChecks(t *testing.T) {
	want := map[string][2]bool{
		"go":                   {false, true},
		"c":                    {true, true},
		"go, no .go.buildinfo": {false, true},
		"c, .dep-v0":           {true, false},
	}
	seeds := elfSeeds(t)
	// Made here: the section names decide, or the magic in the segment.
	magic := append([]byte("\xff Go buildinf:"), make([]byte, 50)...)
	seeds["tiny"], want["tiny"] = tinyELF(".data", make([]byte, 64)), [2]bool{true, true}
	seeds["tiny, magic"], want["tiny, magic"] = tinyELF(".data", magic), [2]bool{false, true}
	seeds["tiny, .go.buildinfo"], want["tiny, .go.buildinfo"] = tinyELF(".go.buildinfo", nil), [2]bool{false, true}
	seeds["tiny, .rust-deps-v0"], want["tiny, .rust-deps-v0"] = tinyELF(".rust-deps-v0", nil), [2]bool{true, false}
	for name, data := range seeds {
		if _, err := elf.NewFile(bytes.NewReader(data)); err != nil {
			t.Fatalf("%s: debug/elf: %v", name, err)
		}
		noGo, noRust := scan.ELFChecks(bytes.NewReader(data))
		if w := want[name]; noGo != w[0] || noRust != w[1] {
			t.Errorf("%s: passed over by the Go-binary extractor %v, by cargo-auditable %v; want %v, %v", name, noGo, noRust, w[0], w[1])
		}
	}
}

// FuzzELFChecks holds the checks to the libraries the extractors call: a
// file the Go-binary extractor passes over has no build information for
// debug/buildinfo, and one the cargo-auditable extractor passes over has
// no dependency information for go-rustaudit.
func FuzzELFChecks(f *testing.F) {
	// The real C executable, and small files made here, which the fuzzer
	// mutates faster than a megabyte Go binary.
	f.Add([]byte(cBinary(f)))
	magic := append([]byte("\xff Go buildinf:\x08\x02"), make([]byte, 48)...)
	for _, seed := range []struct {
		section string
		data    []byte
	}{
		{".data", make([]byte, 64)},
		{".data", magic},
		{".go.buildinfo", magic},
		{".dep-v0", []byte("x\x9c\x03\x00\x00\x00\x00\x01")},
		{".rust-deps-v0", make([]byte, 8)},
	} {
		f.Add(tinyELF(seed.section, seed.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		noGo, noRust := scan.ELFChecks(r)
		if noGo {
			if bi, err := buildinfo.Read(r); err == nil {
				t.Fatalf("passed over by the Go-binary extractor, but debug/buildinfo reads %s", bi.GoVersion)
			}
		}
		if noRust {
			if _, err := rustaudit.GetDependencyInfo(r); !errors.Is(err, rustaudit.ErrNoRustDepInfo) && !errors.Is(err, rustaudit.ErrUnknownFileFormat) {
				t.Fatalf("passed over by the cargo-auditable extractor, but go-rustaudit says %v", err)
			}
		}
	})
}

// tinyELF makes a 64-bit little-endian ELF file of one writable segment
// holding data, which one section, named section, spans.
func tinyELF(section string, data []byte) []byte {
	const dataOff, vaddr = 0x200, 0x1000
	le := binary.LittleEndian
	out := make([]byte, dataOff, dataOff+len(data)+256)
	copy(out, "\x7fELF\x02\x01\x01")
	le.PutUint16(out[16:], uint16(elf.ET_EXEC))
	le.PutUint16(out[18:], uint16(elf.EM_X86_64))
	le.PutUint32(out[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(out[32:], 64) // phoff
	le.PutUint16(out[52:], 64) // ehsize
	le.PutUint16(out[54:], 56) // phentsize
	le.PutUint16(out[56:], 1)  // phnum
	le.PutUint16(out[58:], 64) // shentsize
	le.PutUint16(out[60:], 3)  // shnum: null, section, .shstrtab
	le.PutUint16(out[62:], 2)  // shstrndx
	ph := out[64:]
	le.PutUint32(ph, uint32(elf.PT_LOAD))
	le.PutUint32(ph[4:], uint32(elf.PF_R|elf.PF_W))
	le.PutUint64(ph[8:], dataOff)
	le.PutUint64(ph[16:], vaddr)
	le.PutUint64(ph[24:], vaddr)
	le.PutUint64(ph[32:], uint64(len(data)))
	le.PutUint64(ph[40:], uint64(len(data))+0x100)
	out = append(out, data...)
	strtab := "\x00" + section + "\x00.shstrtab\x00"
	strOff := len(out)
	out = append(out, strtab...)
	shOff := len(out)
	le.PutUint64(out[40:], uint64(shOff))
	sh := make([]byte, 3*64)
	le.PutUint32(sh[64:], 1)
	le.PutUint32(sh[64+4:], uint32(elf.SHT_PROGBITS))
	le.PutUint64(sh[64+8:], uint64(elf.SHF_ALLOC|elf.SHF_WRITE))
	le.PutUint64(sh[64+16:], vaddr)
	le.PutUint64(sh[64+24:], dataOff)
	le.PutUint64(sh[64+32:], uint64(len(data)))
	le.PutUint32(sh[128:], uint32(2+len(section)))
	le.PutUint32(sh[128+4:], uint32(elf.SHT_STRTAB))
	le.PutUint64(sh[128+24:], uint64(strOff))
	le.PutUint64(sh[128+32:], uint64(len(strtab)))
	return append(out, sh...)
}
