//go:build cgo && isal

// A gzip reader over Intel's ISA-L (libisal), through cgo.
//
// Why cgo: inflating is most of a scan's time. An image's base layer is
// typically one big gzip stream, and a gzip stream can only be inflated
// from start to end on one core, so its inflate speed bounds the scan.
// No well-kept pure-Go inflater comes near ISA-L: on the bench image's
// 50 MB base layer (122 MB inflated), on this project's 2-core AMD EPYC
// machine, compress/gzip takes 0.54 s, klauspost/compress/gzip 0.40 s and
// ISA-L's streaming isal_inflate 0.16-0.17 s (libdeflate, whole buffer
// only, 0.19 s). This file is built with the build tag isal, which `make`
// sets when ISA-L's headers are installed (Debian: libisal-dev); otherwise
// scangate uses klauspost's inflater (inflate_go.go), so that a machine
// without the library still builds. Both read the same streams and fail on
// the same ones.
//
// Debian ships libisal only as a shared library, so a binary built with
// the tag needs libisal.so.2 at run time (Debian: libisal2).

package scan

/*
#cgo LDFLAGS: -lisal
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

// The state lives in C memory; the Go buffers are handed to ISA-L for the
// length of one call only, and not kept in the state after it.
static struct inflate_state *sg_isal_new(void) {
	struct inflate_state *s = calloc(1, sizeof(struct inflate_state));
	if (s != NULL) {
		isal_inflate_init(s);
	}
	return s;
}

// sg_isal_member readies the state for a member's deflate data, its
// header read: ISA-L then checks the trailer that follows it.
static void sg_isal_member(struct inflate_state *s) {
	isal_inflate_reset(s);
	s->crc_flag = ISAL_GZIP_NO_HDR_VER;
}

static int sg_isal_inflate(struct inflate_state *s, unsigned char *in, unsigned int in_len,
		unsigned char *out, unsigned int out_len, unsigned int *used, unsigned int *made, int *finished) {
	s->next_in = in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	int ret = isal_inflate(s);
	*used = in_len - s->avail_in;
	*made = out_len - s->avail_out;
	*finished = s->block_state == ISAL_BLOCK_FINISH;
	s->next_in = NULL;
	s->avail_in = 0;
	s->next_out = NULL;
	s->avail_out = 0;
	return ret;
}
*/
import "C"

import (
	"compress/gzip"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"unsafe"
)

// errCorruptDeflate is a gzip member whose compressed data is not valid
// deflate.
var errCorruptDeflate = errors.New("gzip: corrupt deflate data")

// inflaterName names the inflater this build uses.
const inflaterName = "isa-l"

const isalInputSize = 256 << 10

// isalReader inflates a gzip stream of one or more members, as
// compress/gzip's Reader does: it reads each member's header itself (as
// compress/gzip does, header CRC included), ISA-L inflates the deflate
// data and checks the trailer's CRC-32 and size, anything after a member
// must be another member, and a stream cut short is io.ErrUnexpectedEOF.
// It holds one input buffer and ISA-L's state (about 90 KB), never the
// stream.
//
// ISA-L can read the header too (ISAL_GZIP), but 2.30 then rejects a
// valid header CRC when the header comes in more than one piece.
type isalReader struct {
	src     io.Reader
	state   *C.struct_inflate_state
	cleanup runtime.Cleanup
	in      []byte
	pos     int   // in[pos:end] is read and not yet inflated
	end     int   //
	srcErr  error // the source's error, once it gave one
	inBody  bool  // between a member's header and the end of its trailer
	members int   // members read whole
	err     error // sticky: returned by every Read after it
}

// newGzipReader returns a reader of the data gzip-compressed in r.
func newGzipReader(r io.Reader) (io.ReadCloser, error) {
	s := C.sg_isal_new()
	if s == nil {
		return nil, errors.New("gzip: isa-l: out of memory")
	}
	z := &isalReader{src: r, state: s, in: make([]byte, isalInputSize)}
	z.cleanup = runtime.AddCleanup(z, func(s *C.struct_inflate_state) { C.free(unsafe.Pointer(s)) }, s)
	return z, nil
}

// fill reads more input when all of it is used.
func (z *isalReader) fill() {
	if z.pos < z.end || z.srcErr != nil {
		return
	}
	z.pos, z.end = 0, 0
	for range 100 {
		n, err := z.src.Read(z.in)
		z.end, z.srcErr = n, err
		if n > 0 || err != nil {
			return
		}
	}
	z.srcErr = io.ErrNoProgress
}

// short is the error of input that ends where more is needed.
func (z *isalReader) short() error {
	if z.srcErr == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return z.srcErr
}

// next reads n bytes of a header into buf, adding them to the header's
// CRC.
func (z *isalReader) next(buf []byte, crc *uint32) error {
	for i := range buf {
		z.fill()
		if z.pos == z.end {
			return z.short()
		}
		buf[i] = z.in[z.pos]
		z.pos++
	}
	*crc = crc32.Update(*crc, crc32.IEEETable, buf)
	return nil
}

// header reads a member's header (RFC 1952, 2.3), as compress/gzip does.
// At the end of the stream after a whole member, it returns io.EOF.
func (z *isalReader) header() error {
	z.fill()
	if z.pos == z.end && z.members > 0 && z.srcErr == io.EOF {
		return io.EOF
	}
	var crc uint32
	var b [10]byte
	if err := z.next(b[:10], &crc); err != nil {
		return err
	}
	if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
		return gzip.ErrHeader
	}
	flags := b[3]
	if flags&0x04 != 0 { // FEXTRA
		if err := z.next(b[:2], &crc); err != nil {
			return err
		}
		for range int(b[0]) | int(b[1])<<8 {
			if err := z.next(b[:1], &crc); err != nil {
				return err
			}
		}
	}
	for _, flag := range []byte{0x08, 0x10} { // FNAME, FCOMMENT: zero-terminated
		if flags&flag == 0 {
			continue
		}
		for {
			if err := z.next(b[:1], &crc); err != nil {
				return err
			}
			if b[0] == 0 {
				break
			}
		}
	}
	if flags&0x02 != 0 { // FHCRC
		want := uint16(crc)
		if err := z.next(b[:2], &crc); err != nil {
			return err
		}
		if uint16(b[0])|uint16(b[1])<<8 != want {
			return gzip.ErrHeader
		}
	}
	return nil
}

func (z *isalReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if z.state == nil {
		return 0, errors.New("gzip: read after close")
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > 1<<30 {
		p = p[:1<<30]
	}
	for {
		if !z.inBody {
			if err := z.header(); err != nil {
				z.err = err
				return 0, err
			}
			C.sg_isal_member(z.state)
			z.inBody = true
		}
		z.fill()
		if z.pos == z.end {
			z.err = z.short()
			return 0, z.err
		}
		var used, made C.uint
		var finished C.int
		ret := C.sg_isal_inflate(z.state, (*C.uchar)(unsafe.Pointer(&z.in[z.pos])), C.uint(z.end-z.pos),
			(*C.uchar)(unsafe.Pointer(&p[0])), C.uint(len(p)), &used, &made, &finished)
		z.pos += int(used)
		if ret < 0 {
			z.err = isalError(ret)
			return int(made), z.err
		}
		if finished != 0 {
			z.inBody = false
			z.members++
		}
		if made > 0 {
			return int(made), nil
		}
		if used == 0 && z.inBody {
			// Input and room for output, and ISA-L took and gave nothing.
			z.err = fmt.Errorf("gzip: isa-l made no progress (status %d)", int(ret))
			return 0, z.err
		}
	}
}

// Close frees ISA-L's state; it does not close the source.
func (z *isalReader) Close() error {
	if z.state != nil {
		z.cleanup.Stop()
		C.free(unsafe.Pointer(z.state))
		z.state = nil
	}
	return nil
}

// isalError gives ISA-L's failures the errors compress/gzip gives.
func isalError(ret C.int) error {
	switch ret {
	case C.ISAL_INCORRECT_CHECKSUM:
		return gzip.ErrChecksum
	case C.ISAL_INVALID_WRAPPER, C.ISAL_UNSUPPORTED_METHOD:
		return gzip.ErrHeader
	case C.ISAL_INVALID_BLOCK, C.ISAL_INVALID_SYMBOL, C.ISAL_INVALID_LOOKBACK:
		return errCorruptDeflate
	case C.ISAL_NEED_DICT:
		return fmt.Errorf("%w: a preset dictionary", errCorruptDeflate)
	}
	return fmt.Errorf("%w: isa-l status %d", errCorruptDeflate, int(ret))
}
