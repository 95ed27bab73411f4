package mdtlog

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// Segment format constants.
const (
	headerSize = 24 // magic(4) version(1) reserved(3) seq(8) salt(8)
	lenSize    = 4
	tagSize    = chacha20poly1305.Overhead
	// FrameOverhead is what each record costs on disk beyond its CBOR
	// encoding: the masked length and the authentication tag.
	FrameOverhead = lenSize + tagSize
	// MaxRecordSize bounds one encoded record.
	MaxRecordSize = 64 << 10
	version       = 1
	masterKeySize = 32
)

var magic = [4]byte{'M', 'D', 'T', 'L'}

// segHeader is the plaintext header of a segment: version and id only.
type segHeader [headerSize]byte

func newHeader(seq uint64, salt [8]byte) segHeader {
	var h segHeader
	copy(h[0:4], magic[:])
	h[4] = version
	binary.BigEndian.PutUint64(h[8:16], seq)
	copy(h[16:24], salt[:])
	return h
}

func parseHeader(b []byte) (segHeader, error) {
	var h segHeader
	if len(b) < headerSize {
		return h, ErrBadHeader
	}
	copy(h[:], b)
	if [4]byte(h[0:4]) != magic || h[4] != version || h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return h, ErrBadHeader
	}
	return h, nil
}

func (h segHeader) seq() uint64 { return binary.BigEndian.Uint64(h[8:16]) }

// id is the segment id bound into every record's associated data.
func (h segHeader) id() []byte { return h[8:24] }

// segKeys are the keys of one segment.
type segKeys struct {
	aead    cipher.AEAD
	lenKey  [32]byte
	id      [16]byte
	adBuf   [24]byte
	nonce   [12]byte
	lenMask [4]byte
}

// deriveKeys derives a segment's keys from the master key and its header.
func deriveKeys(master []byte, h segHeader) (*segKeys, error) {
	r := hkdf.New(sha256.New, master, nil, append([]byte("mtcagent mdtlog v1 segment "), h[:]...))
	var k [64]byte
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return nil, fmt.Errorf("derive mdt segment key: %w", err)
	}
	aead, err := chacha20poly1305.New(k[:32])
	if err != nil {
		return nil, fmt.Errorf("derive mdt segment key: %w", err)
	}
	sk := &segKeys{aead: aead}
	copy(sk.lenKey[:], k[32:])
	copy(sk.id[:], h.id())
	copy(sk.adBuf[:16], sk.id[:])
	clear(k[:])
	return sk, nil
}

func (k *segKeys) setIndex(idx uint64) {
	binary.BigEndian.PutUint64(k.nonce[4:], idx)
	binary.BigEndian.PutUint64(k.adBuf[16:], idx)
}

// mask returns the keystream that hides the length of frame idx
// (setIndex must have been called).
func (k *segKeys) mask() uint32 {
	c, err := chacha20.NewUnauthenticatedCipher(k.lenKey[:], k.nonce[:])
	if err != nil {
		panic(err) // sizes are constant
	}
	k.lenMask = [4]byte{}
	c.XORKeyStream(k.lenMask[:], k.lenMask[:])
	return binary.BigEndian.Uint32(k.lenMask[:])
}

// appendFrame appends the sealed frame of plaintext at idx to dst.
func (k *segKeys) appendFrame(dst []byte, idx uint64, plain []byte) []byte {
	k.setIndex(idx)
	n := uint32(len(plain) + tagSize)
	dst = binary.BigEndian.AppendUint32(dst, n^k.mask())
	return k.aead.Seal(dst, k.nonce[:], plain, k.adBuf[:])
}

// frameResult is one frame found by scanFrames.
type frameResult struct {
	idx   uint64
	off   int64 // offset of the frame
	end   int64 // offset after the frame
	plain []byte
	err   error // nil, ErrAuth, ErrTorn or ErrBadLength
}

// scanFrames walks the frames of a segment body (data after the header,
// which starts at file offset headerSize) and calls fn for each, good or
// bad. Segments are preallocated with zeros, so a remainder of zeros is the
// clean end of the segment, not an error. It stops at a torn frame or a bad
// length (nothing after either can be parsed). It never panics on arbitrary
// bytes. fn's plain is valid only during the call.
func (k *segKeys) scanFrames(body []byte, fn func(frameResult) bool) {
	var buf []byte
	off := 0
	for idx := uint64(0); off < len(body); idx++ {
		start := off
		r := frameResult{idx: idx, off: int64(headerSize + off)}
		fail := func(err error) {
			if !allZero(body[start:]) {
				r.err, r.end = err, int64(headerSize+len(body))
				fn(r)
			}
		}
		if len(body)-off < lenSize {
			fail(ErrTorn)
			return
		}
		k.setIndex(idx)
		n := binary.BigEndian.Uint32(body[off:]) ^ k.mask()
		if n < tagSize || n > MaxRecordSize+tagSize {
			fail(ErrBadLength)
			return
		}
		ctStart := off + lenSize
		if uint64(len(body)-ctStart) < uint64(n) {
			fail(ErrTorn)
			return
		}
		ct := body[ctStart : ctStart+int(n)]
		p, err := k.aead.Open(buf[:0], k.nonce[:], ct, k.adBuf[:])
		if err != nil {
			if allZero(body[start:]) {
				return
			}
			r.err = ErrAuth
			if allZero(body[ctStart+int(n):]) {
				// The last frame, whole in length but not in content: a
				// power cut after the file grew and before its data
				// blocks were written (delayed allocation leaves zeros or
				// stale bytes). That is a torn append, never one reported
				// durable (those were synced), as a short one is.
				r.err = ErrTorn
			}
		} else {
			buf = p
			r.plain = p
		}
		off = ctStart + int(n)
		r.end = int64(headerSize + off)
		if !fn(r) {
			return
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ScanSegment reads one whole segment file's bytes with master and calls fn
// for each record that authenticates and decodes; every record that does not
// is returned as a *RecordError (a torn or unparseable tail ends the list).
// It is the reader the fuzz target exercises.
func ScanSegment(data, master []byte, fn func(Entry)) (good int, bad []*RecordError, err error) {
	good, bad, _, err = scanSegment(data, master, fn)
	return good, bad, err
}

// scanSegment is ScanSegment that also returns the end offset of the last
// frame that authenticated (headerSize when none did).
func scanSegment(data, master []byte, fn func(Entry)) (good int, bad []*RecordError, end int64, err error) {
	end = headerSize
	h, err := parseHeader(data)
	if err != nil {
		return 0, nil, 0, err
	}
	if len(master) != masterKeySize {
		return 0, nil, 0, ErrNoKey
	}
	k, err := deriveKeys(master, h)
	if err != nil {
		return 0, nil, 0, err
	}
	seq := h.seq()
	k.scanFrames(data[headerSize:], func(f frameResult) bool {
		if f.err == nil {
			var rec Record
			if derr := rec.UnmarshalCBOR(f.plain); derr != nil {
				// Authentic but undecodable: written by a newer format.
				f.err = derr
			} else {
				good++
				end = f.end
				if fn != nil {
					fn(Entry{Pos: Position{Segment: seq, Index: f.idx}, Record: rec})
				}
				return true
			}
		}
		bad = append(bad, &RecordError{Segment: seq, Index: f.idx, Offset: f.off, Err: f.err})
		return true
	})
	return good, bad, end, nil
}
