package scan

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
)

// The Go-binary and cargo-auditable extractors open every executable and
// shared library of an image, and find nothing in nearly all of them (a
// distribution's C programs). Each parses the whole ELF file with
// debug/elf first, section and program headers into fresh structures,
// and the Go one then searches the file's data segment for Go's build
// information through a fresh megabyte buffer: on the bench's Debian image
// that was 36 ms of a 310 ms scan. What decides their answer is cheaper to
// read: the section names and the program headers. elfHeaders reads those
// as debug/elf does, and noGoBuildInfo and noRustDeps say when the
// extractors would certainly find nothing (debug/buildinfo and go-rustaudit
// decide by them); in any doubt, an ELF file read otherwise than
// debug/elf would read it, they say nothing, and the extractor runs.
// FuzzELFChecks holds them to the libraries' own answers.

// maxELFHeaders bounds what elfHeaders reads: the header tables and the
// section names. Real files have a few kilobytes of them.
const maxELFHeaders = 4 << 20

// maxELFSearch bounds the bytes noGoBuildInfo searches for Go's build
// information; a larger data segment is left to the extractor.
const maxELFSearch = 64 << 20

// elfProg is a program header, as debug/elf's ProgHeader.
type elfProg struct {
	typ, flags                uint32
	off, vaddr, filesz, memsz uint64
}

// elfHeaders is what the executable extractors' answers hang on.
type elfHeaders struct {
	sections map[string]bool // section names
	progs    []elfProg
}

// readELFHeaders reads an ELF file's section names and program headers;
// ok is false for anything else, or anything read otherwise than
// debug/elf's NewFile would read it.
func readELFHeaders(r io.ReaderAt) (h elfHeaders, ok bool) {
	var ident [elf.EI_NIDENT]byte
	if _, err := r.ReadAt(ident[:], 0); err != nil || !bytes.HasPrefix(ident[:], []byte(elf.ELFMAG)) {
		return h, false
	}
	var bo binary.ByteOrder
	switch elf.Data(ident[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return h, false
	}
	if elf.Version(ident[elf.EI_VERSION]) != elf.EV_CURRENT {
		return h, false
	}
	var (
		phoff, shoff                                                 uint64
		phentsize, phnum, shentsize, shnum, shstrndx, wantPh, wantSh int
		is64                                                         bool
	)
	switch elf.Class(ident[elf.EI_CLASS]) {
	case elf.ELFCLASS32:
		var b [52]byte
		if _, err := r.ReadAt(b[:], 0); err != nil || bo.Uint32(b[20:]) != uint32(elf.EV_CURRENT) {
			return h, false
		}
		phoff, shoff = uint64(bo.Uint32(b[28:])), uint64(bo.Uint32(b[32:]))
		phentsize, phnum = int(bo.Uint16(b[42:])), int(bo.Uint16(b[44:]))
		shentsize, shnum, shstrndx = int(bo.Uint16(b[46:])), int(bo.Uint16(b[48:])), int(bo.Uint16(b[50:]))
		wantPh, wantSh = 32, 40
	case elf.ELFCLASS64:
		var b [64]byte
		if _, err := r.ReadAt(b[:], 0); err != nil || bo.Uint32(b[20:]) != uint32(elf.EV_CURRENT) {
			return h, false
		}
		phoff, shoff = bo.Uint64(b[32:]), bo.Uint64(b[40:])
		phentsize, phnum = int(bo.Uint16(b[54:])), int(bo.Uint16(b[56:]))
		shentsize, shnum, shstrndx = int(bo.Uint16(b[58:])), int(bo.Uint16(b[60:])), int(bo.Uint16(b[62:]))
		wantPh, wantSh, is64 = 56, 64, true
	default:
		return h, false
	}
	// Extended numbering (shnum 0 with a table, phnum PN_XNUM) and odd
	// headers are left to debug/elf.
	if int64(phoff) < 0 || int64(shoff) < 0 || (shoff == 0) != (shnum == 0) || phnum == 0xffff ||
		(phnum > 0 && phentsize < wantPh) || (shnum > 0 && (shentsize < wantSh || shstrndx >= shnum)) ||
		phnum*phentsize+shnum*shentsize > maxELFHeaders {
		return h, false
	}
	ph := make([]byte, phnum*phentsize)
	if _, err := r.ReadAt(ph, int64(phoff)); err != nil && len(ph) > 0 {
		return h, false
	}
	for i := range phnum {
		b := ph[i*phentsize:]
		var p elfProg
		if is64 {
			p = elfProg{typ: bo.Uint32(b), flags: bo.Uint32(b[4:]), off: bo.Uint64(b[8:]), vaddr: bo.Uint64(b[16:]), filesz: bo.Uint64(b[32:]), memsz: bo.Uint64(b[40:])}
		} else {
			p = elfProg{typ: bo.Uint32(b), off: uint64(bo.Uint32(b[4:])), vaddr: uint64(bo.Uint32(b[8:])), filesz: uint64(bo.Uint32(b[16:])), memsz: uint64(bo.Uint32(b[20:])), flags: bo.Uint32(b[24:])}
		}
		if int64(p.off) < 0 || int64(p.filesz) < 0 {
			return h, false
		}
		h.progs = append(h.progs, p)
	}
	h.sections = map[string]bool{}
	if shnum == 0 || shstrndx == 0 {
		return h, true // no sections, or no names (debug/elf names them "")
	}
	sh := make([]byte, shnum*shentsize)
	if _, err := r.ReadAt(sh, int64(shoff)); err != nil {
		return h, false
	}
	// The names' table: its type, flags, offset and size.
	strtab := func(i int) (typ uint32, flags, off, size uint64) {
		b := sh[i*shentsize:]
		if is64 {
			return bo.Uint32(b[4:]), bo.Uint64(b[8:]), bo.Uint64(b[24:]), bo.Uint64(b[32:])
		}
		return bo.Uint32(b[4:]), uint64(bo.Uint32(b[8:])), uint64(bo.Uint32(b[16:])), uint64(bo.Uint32(b[20:]))
	}
	typ, flags, off, size := strtab(shstrndx)
	if elf.SectionType(typ) != elf.SHT_STRTAB || elf.SectionFlag(flags)&elf.SHF_COMPRESSED != 0 ||
		int64(off) < 0 || size > maxELFHeaders {
		return h, false
	}
	names := make([]byte, size)
	if _, err := r.ReadAt(names, int64(off)); err != nil && size > 0 {
		return h, false
	}
	for i := range shnum {
		start := int(bo.Uint32(sh[i*shentsize:]))
		if start >= len(names) {
			return h, false // debug/elf refuses the file; the extractor will say so
		}
		end := bytes.IndexByte(names[start:], 0)
		if end < 0 {
			return h, false
		}
		h.sections[string(names[start:start+end])] = true
	}
	return h, true
}

// goBuildInfoMagic opens Go's build information (debug/buildinfo).
var goBuildInfoMagic = []byte("\xff Go buildinf:")

// noGoBuildInfo reports whether debug/buildinfo.Read certainly finds no
// build information in the file: it has no .go.buildinfo section, and its
// first writable data segment, where debug/buildinfo searches then, has
// no build information magic in the bytes of any segment it reads from.
func (h elfHeaders) noGoBuildInfo(r io.ReaderAt) bool {
	if h.sections[".go.buildinfo"] {
		return false
	}
	var data *elfProg
	for i := range h.progs {
		p := &h.progs[i]
		if elf.ProgType(p.typ) == elf.PT_LOAD && elf.ProgFlag(p.flags)&(elf.PF_X|elf.PF_W) == elf.PF_W {
			data = p
			break
		}
	}
	if data == nil {
		return true // debug/buildinfo has nowhere to look
	}
	lo, hi := data.vaddr, data.vaddr+data.memsz
	if hi < lo {
		return false
	}
	// debug/buildinfo reads each address from the first segment whose file
	// bytes hold it: search every segment that holds any.
	searched := uint64(0)
	var buf []byte
	for _, p := range h.progs {
		end := p.vaddr + p.filesz
		if end < p.vaddr {
			return false // debug/buildinfo's arithmetic wraps here
		}
		if p.filesz == 0 || p.vaddr >= hi || end <= lo {
			continue
		}
		if searched += p.filesz; searched > maxELFSearch {
			return false
		}
		want := int(min(p.filesz, 64<<10))
		if cap(buf) < want {
			buf = make([]byte, want)
		}
		if found, err := contains(r, int64(p.off), int64(p.filesz), goBuildInfoMagic, buf[:want]); found || err != nil {
			return false
		}
	}
	return true
}

// contains reports whether the n bytes of r at off hold magic, reading
// them through buf in overlapping pieces. A read that ends early ends the
// search (debug/buildinfo sees the same end).
func contains(r io.ReaderAt, off, n int64, magic, buf []byte) (bool, error) {
	if len(buf) < 2*len(magic) {
		buf = make([]byte, 2*len(magic))
	}
	for n > 0 {
		k := int(min(n, int64(len(buf))))
		got, err := r.ReadAt(buf[:k], off)
		if bytes.Contains(buf[:got], magic) {
			return true, nil
		}
		if got < k {
			if err == io.EOF {
				return false, nil
			}
			return false, err
		}
		if int64(k) == n {
			return false, nil
		}
		step := int64(k - len(magic) + 1)
		off, n = off+step, n-step
	}
	return false, nil
}

// noRustDeps reports whether go-rustaudit certainly finds no dependency
// information in the file: it has neither of cargo-auditable's sections.
func (h elfHeaders) noRustDeps() bool {
	return !h.sections[".dep-v0"] && !h.sections[".rust-deps-v0"]
}
