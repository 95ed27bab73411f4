package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/plgd-dev/go-coap/v3/message"
	"github.com/plgd-dev/go-coap/v3/message/codes"
	udpClient "github.com/plgd-dev/go-coap/v3/udp/client"

	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/wire"
)

// MDTDir is where the collector keeps the measurement logs it pulled:
// STATE_DIR/mdt/DEVICE.cbor, each a CBOR sequence of records as the
// device logged them (masked to what the device grants this collector).
const MDTDir = "mdt"

// mdtMaxPages bounds one pull (a 4 MiB log is about 5,000 pages).
const mdtMaxPages = 20000

// MDTPath returns the file holding a device's pulled measurement records.
func (s *Server) MDTPath(id string) string { return MDTFile(s.stateDir, id) }

// MDTFile is the file holding device id's pulled measurement records in
// the collector state directory stateDir.
func MDTFile(stateDir, id string) string {
	return filepath.Join(stateDir, MDTDir, url.PathEscape(id)+".cbor")
}

// ErrMDTTail is returned by ReadMDT when the file ends in part of a record
// (a power cut during an append); the records before it were all read.
var ErrMDTTail = errors.New("collector: the MDT file ends in an incomplete record")

// ReadMDT calls fn for each measurement record pulled from device id, in
// order. A record that does not decode stops the reading with an error
// naming its offset; nothing after it is returned as valid.
func ReadMDT(stateDir, id string, fn func(wire.MDTRecord) error) (int, error) {
	return ReadMDTFile(MDTFile(stateDir, id), fn)
}

// ReadMDTFile is ReadMDT for a file named by its path, such as one the
// collector set aside as damaged: the records before the damage are read.
func ReadMDTFile(path string, fn func(wire.MDTRecord) error) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n := 0
	end, err := scanMDT(b, func(r wire.MDTRecord, _ int) error {
		if err := fn(r); err != nil {
			return err
		}
		n++
		return nil
	})
	if err == nil && end < len(b) {
		err = fmt.Errorf("%w (at byte %d of %d)", ErrMDTTail, end, len(b))
	}
	return n, err
}

// scanMDT decodes the records in an MDT file's contents in order, calling
// fn with each and the offset just past it. It returns where the whole
// records end: len(b), or the offset of an incomplete last record. A
// record that does not decode stops it with an error naming its offset.
func scanMDT(b []byte, fn func(r wire.MDTRecord, next int) error) (int, error) {
	dec := cbor.NewDecoder(bytes.NewReader(b))
	for {
		off := dec.NumBytesRead()
		var raw cbor.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return len(b), nil
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return off, nil
		}
		var r wire.MDTRecord
		if err == nil {
			err = r.UnmarshalCBOR(raw)
		}
		if err != nil {
			return off, fmt.Errorf("collector: MDT record at byte %d: %w", off, err)
		}
		if err := fn(r, dec.NumBytesRead()); err != nil {
			return off, err
		}
	}
}

// maybePullMDT pulls the device's measurement log on a new session (now)
// or when the last pull is older than the configured interval, at most one
// pull per device at once.
func (s *Server) maybePullMDT(d *Device, cc *udpClient.Conn, now bool) {
	if s.cfg.MDTPull <= 0 {
		return
	}
	ds := s.device(d.ID)
	s.mu.Lock()
	due := s.mdtBusy[d.ID] == nil && (now || ds.MDTPulledAt.IsZero() || s.now().Sub(ds.MDTPulledAt) >= s.cfg.MDTPull)
	if due {
		s.mdtBusy[d.ID] = cc
	}
	s.mu.Unlock()
	if !due {
		return
	}
	done := func() { s.mu.Lock(); delete(s.mdtBusy, d.ID); s.mu.Unlock() }
	started := s.background(func() {
		defer done()
		ctx, cancel := context.WithTimeout(cc.Context(), 10*time.Minute)
		defer cancel()
		if err := s.pullMDT(ctx, d, cc); err != nil {
			s.logf("device %s: MDT pull: %v", d.ID, err)
		}
	})
	if !started {
		done() // closing
	}
}

// pullMDT fetches the records after the collector's cursor page by page,
// stores each page durably before moving the cursor, and then confirms
// what it stored, so the device may delete it. A crash between storing and
// saving the cursor stores a page twice at worst; records are never lost.
func (s *Server) pullMDT(ctx context.Context, d *Device, cc *udpClient.Conn) error {
	var cursor *wire.MDTPos
	if err := s.update(d.ID, func(ds *DeviceState) error {
		ds.MDTPulledAt = s.now()
		cursor = ds.MDTCursor
		return nil
	}); err != nil {
		return err
	}
	stored, err := s.pullPages(ctx, d, cc, &cursor)
	if stored == 0 {
		return err
	}
	// Confirm what is stored, also when a later page failed.
	ack, _ := cbor.Marshal(wire.MDTAck{Upto: *cursor})
	resp, aerr := cc.Post(ctx, wire.PathMDTAck, message.AppCBOR, bytes.NewReader(ack))
	if aerr != nil {
		return errors.Join(err, fmt.Errorf("%d records stored, ack: %w", stored, aerr))
	}
	var res wire.MDTAckResult
	if body, err := resp.ReadBody(); err == nil && len(body) > 0 {
		_ = cbor.Unmarshal(body, &res)
	}
	s.logf("device %s: %d MDT records stored (up to %s); the device deleted %d records", d.ID, stored, cursor, res.Records)
	return err
}

// pullPages fetches and stores pages after *cursor, moving it page by page.
func (s *Server) pullPages(ctx context.Context, d *Device, cc *udpClient.Conn, cursor **wire.MDTPos) (stored int, err error) {
	for range mdtMaxPages {
		var opts []message.Option
		if *cursor != nil {
			opts = append(opts, message.Option{ID: message.URIQuery, Value: []byte("after=" + (*cursor).String())})
		}
		resp, err := cc.Get(ctx, wire.PathMDT, opts...)
		if err != nil {
			return stored, fmt.Errorf("request: %w", err)
		}
		if resp.Code() == codes.NotFound {
			return stored, nil // not granted to this collector, or no consent on the device
		}
		if resp.Code() != codes.Content {
			return stored, fmt.Errorf("device answered %v", resp.Code())
		}
		body, err := resp.ReadBody()
		if err != nil {
			return stored, err
		}
		page, err := wire.DecodeMDTPage(body) // checks each record, too
		if err != nil {
			return stored, fmt.Errorf("the page after %v: %w", *cursor, err)
		}
		if len(page.Records) == 0 {
			return stored, nil
		}
		var buf bytes.Buffer
		for _, raw := range page.Records {
			buf.Write(raw)
		}
		if err := s.appendMDT(d.ID, buf.Bytes()); err != nil {
			return stored, err
		}
		if err := s.update(d.ID, func(ds *DeviceState) error {
			ds.MDTCursor, ds.MDTRecords = page.Last, ds.MDTRecords+uint64(len(page.Records))
			return nil
		}); err != nil {
			return stored, err // stored again by the next pull, at worst
		}
		*cursor, stored = page.Last, stored+len(page.Records)
		if !page.More {
			return stored, nil
		}
	}
	return stored, fmt.Errorf("more than %d pages in one pull", mdtMaxPages)
}

// appendMDT appends whole records to the device's file and syncs it.
func (s *Server) appendMDT(id string, b []byte) error {
	s.mdtFileMu.Lock()
	defer s.mdtFileMu.Unlock()
	p := s.MDTPath(id)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	_, werr := f.Write(b)
	if werr != nil {
		// Never leave part of a record for the next page to follow.
		werr = errors.Join(werr, f.Truncate(fi.Size()))
	}
	serr := fsutil.Datasync(f)
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("store MDT records: %w", err)
	}
	if fi.Size() > 0 {
		return nil // the file's directory entry is durable already
	}
	return fsutil.SyncDir(filepath.Dir(p))
}

// mdtTidyEvery is how often Run applies mdt_keep to every device's file
// (New does it once at start).
const mdtTidyEvery = time.Hour

// tidyAllMDT applies mdt_keep to the files of all registered devices.
func (s *Server) tidyAllMDT() {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	ds, err := s.st.ListDevices(ctx)
	cancel()
	if err != nil {
		s.logf("ERROR listing the devices to tidy their measurement logs: %v", err)
		return
	}
	for _, d := range ds {
		if err := s.tidyMDT(d.ID); err != nil {
			s.logf("ERROR device %s: %v", d.ID, err)
		}
	}
}

// tidyMDT keeps a device's MDT file to mdt_keep and to whole records: it
// removes the records that have expired (see mdtSpan) and an incomplete
// record at the end, which a power cut during a store leaves and which
// would otherwise swallow the next records appended. The file is replaced
// atomically. A file with a record that does not decode is set aside
// whole (renamed DEVICE.cbor.damaged-TIME), the error naming the record's
// offset: nothing that cannot be read is removed, and what comes next is
// readable.
func (s *Server) tidyMDT(id string) error {
	s.mdtFileMu.Lock()
	defer s.mdtFileMu.Unlock()
	p := s.MDTPath(id)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tidy MDT records: %w", err)
	}
	var cutoff time.Time
	if s.cfg.MDTKeep > 0 {
		cutoff = s.now().Add(-s.cfg.MDTKeep)
	}
	sp, err := mdtSpan(b, cutoff)
	if err != nil {
		// Keep what cannot be read, untouched, for the operator, and let
		// the next records start a new file that can be read.
		aside := p + ".damaged-" + s.now().UTC().Format("20060102T150405Z")
		if rerr := os.Rename(p, aside); rerr != nil {
			return fmt.Errorf("tidy MDT records: %w; setting the file aside: %w", err, rerr)
		}
		if serr := fsutil.SyncDir(filepath.Dir(p)); serr != nil {
			return fmt.Errorf("tidy MDT records: setting the damaged file aside: %w", serr)
		}
		s.logf("ERROR device %s: %v; the file is kept as %s, and new records go to a new file", id, err, filepath.Base(aside))
		return nil
	}
	if sp.start == 0 && sp.end == len(b) {
		return nil
	}
	if err := fsutil.WriteFileAtomic(p, b[sp.start:sp.end], 0o600); err != nil {
		return fmt.Errorf("tidy MDT records: %w", err)
	}
	if sp.expired > 0 {
		s.logf("device %s: %d MDT records older than %s removed (%d bytes)", id, sp.expired, s.cfg.MDTKeep, sp.start)
	}
	if sp.end < len(b) {
		s.logf("device %s: MDT file ended in an incomplete record (%d bytes, a store cut short); removed", id, len(b)-sp.end)
	}
	return nil
}

// span is the part of an MDT file to keep: b[start:end].
type span struct {
	start, end int
	expired    int // records before start
}

// mdtSpan finds, in an MDT file's contents, the records to keep: those
// after the last record that was logged before cutoff by a synchronised
// clock, up to the last whole record. Records are in logging order, so
// every record before that one was logged earlier, also those whose clock
// was not synchronised (a 1970 timestamp says nothing of their age). A
// zero cutoff expires nothing.
func mdtSpan(b []byte, cutoff time.Time) (span, error) {
	var sp span
	n := 0
	end, err := scanMDT(b, func(r wire.MDTRecord, next int) error {
		n++
		if !cutoff.IsZero() && r.ClockSynced && r.Time.Before(cutoff) {
			sp.start, sp.expired = next, n
		}
		return nil
	})
	if err != nil {
		return span{}, err
	}
	sp.end = end
	return sp, nil
}
