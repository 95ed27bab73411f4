package outbox

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// On-disk format (see docs/outbox.md).
//
// Segment file "seg-<first id, 16 hex digits>.log":
//
//	header  magic "MTCO" | version 1 | 3 zero bytes | first id (u64 BE)   16 bytes
//	frame   length n (u32 BE) | id (u64 BE) | CRC-32C (u32 BE) | n bytes  16+n bytes
//
// The CRC covers the length, the id and the payload. Ids are strictly
// increasing within a segment and across segments (contiguous unless
// corruption removed some).
//
// Ack file "ack": magic "MTCA" | acked id (u64 BE) | CRC-32C of the first
// 12 bytes (u32 BE), replaced atomically (temporary file, fsync, rename).
const (
	headerSize = 16
	// FrameOverhead is what each message costs on disk beyond its bytes.
	FrameOverhead = 16
	// MaxMessageSize bounds one message.
	MaxMessageSize = 64 << 10
	version        = 1
	ackSize        = 16
	segPrefix      = "seg-"
	segSuffix      = ".log"
	ackName        = "ack"
	lockName       = "lock"
)

var (
	segMagic = [4]byte{'M', 'T', 'C', 'O'}
	ackMagic = [4]byte{'M', 'T', 'C', 'A'}
	castagn  = crc32.MakeTable(crc32.Castagnoli)
)

func segName(first uint64) string { return fmt.Sprintf("%s%016x%s", segPrefix, first, segSuffix) }

// parseSegName returns the first id named by a segment file name.
func parseSegName(name string) (uint64, bool) {
	if !strings.HasPrefix(name, segPrefix) || !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	hex := name[len(segPrefix) : len(name)-len(segSuffix)]
	if len(hex) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || v == 0 {
		return 0, false
	}
	return v, true
}

func segHeader(first uint64) []byte {
	h := make([]byte, headerSize)
	copy(h, segMagic[:])
	h[4] = version
	binary.BigEndian.PutUint64(h[8:], first)
	return h
}

func frameCRC(hdr []byte, payload []byte) uint32 {
	c := crc32.Update(0, castagn, hdr[:12])
	return crc32.Update(c, castagn, payload)
}

// appendFrame appends the frame of msg with id to dst.
func appendFrame(dst []byte, id uint64, msg []byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
	dst = binary.BigEndian.AppendUint64(dst, id)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = append(dst, msg...)
	binary.BigEndian.PutUint32(dst[start+12:], frameCRC(dst[start:start+12], msg))
	return dst
}

// checkFrame verifies a whole frame held in b (exactly 16+n bytes) and
// returns its id and payload (a sub-slice of b).
func checkFrame(b []byte) (id uint64, payload []byte, err error) {
	if len(b) < FrameOverhead {
		return 0, nil, ErrTorn
	}
	n := binary.BigEndian.Uint32(b)
	if n > MaxMessageSize {
		return 0, nil, ErrBadLength
	}
	if uint64(len(b)) != FrameOverhead+uint64(n) {
		return 0, nil, ErrTorn
	}
	payload = b[FrameOverhead:]
	if frameCRC(b, payload) != binary.BigEndian.Uint32(b[12:]) {
		return 0, nil, ErrChecksum
	}
	return binary.BigEndian.Uint64(b[4:]), payload, nil
}

// frame is a valid record found in a segment.
type frame struct {
	id  uint64
	off int64  // offset of the frame in the file
	n   uint32 // payload length
}

func (f frame) end() int64 { return f.off + FrameOverhead + int64(f.n) }

// badRegion is a stretch of a segment without valid frames.
type badRegion struct {
	off, end int64
	err      error
	tail     bool // runs to the end of the file
}

// scanResult is what scanSegment found in one segment file.
type scanResult struct {
	headerOK bool
	frames   []frame
	bad      []badRegion
	goodEnd  int64 // end of the last valid frame (headerSize if none)
}

// scanSegment parses the bytes of a segment file whose name says its first
// id is first; every returned frame has id > after and ids strictly
// increase. A bad header is reported but the frames are still read (each
// frame checks itself). After a bad frame the reader looks for the next
// valid frame whose id fits what the skipped bytes could have held; if
// there is none the rest of the file is one bad tail. It never panics and
// never returns a frame whose CRC does not match.
func scanSegment(data []byte, first, after uint64) scanResult {
	r := scanResult{goodEnd: headerSize}
	if len(data) >= headerSize && [4]byte(data[0:4]) == segMagic && data[4] == version &&
		data[5] == 0 && data[6] == 0 && data[7] == 0 && binary.BigEndian.Uint64(data[8:16]) == first {
		r.headerOK = true
	}
	if len(data) < headerSize {
		if len(data) > 0 {
			r.bad = append(r.bad, badRegion{off: 0, end: int64(len(data)), err: ErrBadHeader, tail: true})
		}
		r.goodEnd = int64(len(data))
		return r
	}
	if !r.headerOK {
		r.bad = append(r.bad, badRegion{off: 0, end: headerSize, err: ErrBadHeader})
	}
	last := after
	if first > 0 && first-1 > last {
		last = first - 1
	}
	off := headerSize
	for off < len(data) {
		f, err := parseFrameAt(data, off, last, last+1)
		if err == nil {
			r.frames = append(r.frames, f)
			last = f.id
			off = int(f.end())
			r.goodEnd = f.end()
			continue
		}
		f, ok := resync(data, off+1, last, off)
		if !ok {
			r.bad = append(r.bad, badRegion{off: int64(off), end: int64(len(data)), err: err, tail: true})
			break
		}
		r.bad = append(r.bad, badRegion{off: int64(off), end: f.off, err: err})
		r.frames = append(r.frames, f)
		last = f.id
		off = int(f.end())
		r.goodEnd = f.end()
	}
	return r
}

// parseFrameAt checks the frame at off: it must be whole, have a valid
// CRC, and an id in (last, maxID].
func parseFrameAt(data []byte, off int, last, maxID uint64) (frame, error) {
	rest := data[off:]
	if len(rest) < FrameOverhead {
		return frame{}, ErrTorn
	}
	n := binary.BigEndian.Uint32(rest)
	if n > MaxMessageSize {
		return frame{}, ErrBadLength
	}
	if uint64(len(rest)) < FrameOverhead+uint64(n) {
		return frame{}, ErrTorn
	}
	id, _, err := checkFrame(rest[:FrameOverhead+int(n)])
	if err != nil {
		return frame{}, err
	}
	if id <= last || id > maxID {
		return frame{}, ErrBadID
	}
	return frame{id: id, off: int64(off), n: n}, nil
}

// resync finds the first offset >= from holding a valid frame that could
// follow id last after the bad stretch starting at badOff: ids are
// contiguous when written, so the stretch can have held at most one frame
// per FrameOverhead bytes. It reports false if there is none.
func resync(data []byte, from int, last uint64, badOff int) (frame, bool) {
	for p := from; p+FrameOverhead <= len(data); p++ {
		maxID := last + 1 + uint64(p-badOff)/FrameOverhead
		id := binary.BigEndian.Uint64(data[p+4:])
		if id <= last || id > maxID {
			continue // cheap filter before the CRC
		}
		if f, err := parseFrameAt(data, p, last, maxID); err == nil {
			return f, true
		}
	}
	return frame{}, false
}

func encodeAck(acked uint64) []byte {
	b := make([]byte, ackSize)
	copy(b, ackMagic[:])
	binary.BigEndian.PutUint64(b[4:], acked)
	binary.BigEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagn))
	return b
}

func decodeAck(b []byte) (uint64, error) {
	if len(b) != ackSize || [4]byte(b[0:4]) != ackMagic {
		return 0, ErrBadHeader
	}
	if crc32.Checksum(b[:12], castagn) != binary.BigEndian.Uint32(b[12:]) {
		return 0, ErrChecksum
	}
	return binary.BigEndian.Uint64(b[4:]), nil
}
