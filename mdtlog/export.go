package mdtlog

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// Export formats.
const (
	FormatJSONL = "jsonl" // one JSON object per line (Entry.JSON)
	FormatCBOR  = "cbor"  // a CBOR sequence (RFC 8742) of records in the log's own encoding
)

// Export writes every readable record to w in format and returns the scan
// report (failed records are counted there, never exported).
func (s *Store) Export(w io.Writer, format string) (ScanReport, error) {
	if format != FormatJSONL && format != FormatCBOR {
		return ScanReport{}, fmt.Errorf("export mdt log: unknown format %q (want jsonl or cbor)", format)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	rep, err := s.Records(func(e Entry) error {
		if format == FormatJSONL {
			return enc.Encode(e.JSON())
		}
		b, err := e.Record.MarshalCBOR()
		if err != nil {
			return err
		}
		_, err = bw.Write(b)
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("export mdt log: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return rep, fmt.Errorf("export mdt log: %w", err)
	}
	return rep, nil
}
