package collector

import (
	"bufio"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/internal/config"
)

// DeviceSpec is a device as an operator writes it: on the command line,
// as a CSV row or as a JSON object (the field names are the CSV header's
// and the JSON keys). PSK and key pin are hex; the public key is the PEM
// from 'mtcagent key public' or the raw Ed25519 key in 64 hex digits;
// binding is "IMSI ICCID", two 32-hex-digit pseudonyms.
type DeviceSpec struct {
	ID               string `json:"id"`
	PSKIdentity      string `json:"psk_identity"`
	PSK              string `json:"psk"`
	PublicKey        string `json:"public_key"`
	KeyPin           string `json:"key_pin"`
	Binding          string `json:"binding"`
	HeartbeatTimeout string `json:"heartbeat_timeout"`
}

// deviceFields are the CSV columns, in DeviceSpec's order.
var deviceFields = []string{"id", "psk_identity", "psk", "public_key", "key_pin", "binding", "heartbeat_timeout"}

// Device checks the spec and returns the device. Messages never contain
// the PSK.
func (sp DeviceSpec) Device() (*Device, error) {
	d := &Device{ID: strings.TrimSpace(sp.ID), PSKIdentity: strings.TrimSpace(sp.PSKIdentity)}
	var err error
	if p := strings.TrimSpace(sp.PSK); p != "" {
		if d.PSK, err = hex.DecodeString(p); err != nil {
			return nil, fmt.Errorf("device %s: psk: not hex (want at least 32 hex digits)", d.ID)
		}
	}
	k := strings.TrimSpace(sp.PublicKey)
	switch {
	case strings.HasPrefix(k, "-----BEGIN"):
		if d.PublicKey, err = attest.ParsePublicKeyPEM([]byte(k)); err != nil {
			return nil, fmt.Errorf("device %s: public_key: %v", d.ID, err)
		}
	case k != "":
		if d.PublicKey, err = hex.DecodeString(k); err != nil {
			return nil, fmt.Errorf("device %s: public_key: not hex (want the PEM, or 64 hex digits)", d.ID)
		}
	}
	if p := strings.TrimSpace(sp.KeyPin); p != "" {
		if d.KeyPin, err = hex.DecodeString(p); err != nil {
			return nil, fmt.Errorf("device %s: key_pin: not hex (want 64 hex digits)", d.ID)
		}
	}
	if b := strings.Fields(sp.Binding); len(b) > 0 {
		var p attest.Pseudonyms
		var e1, e2 error
		if len(b) == 2 {
			p.IMSI, e1 = hex.DecodeString(b[0])
			p.ICCID, e2 = hex.DecodeString(b[1])
		}
		if len(b) != 2 || e1 != nil || e2 != nil {
			return nil, fmt.Errorf("device %s: binding: want two 32-hex-digit pseudonyms (IMSI ICCID)", d.ID)
		}
		d.Binding = &p
	}
	if h := strings.TrimSpace(sp.HeartbeatTimeout); h != "" {
		if d.HeartbeatTimeout, err = config.ParseDuration(h); err != nil || d.HeartbeatTimeout <= 0 {
			return nil, fmt.Errorf("device %s: heartbeat_timeout: want a positive duration like 90s or 15m", d.ID)
		}
	}
	if err := CheckDevice(d); err != nil {
		return nil, err
	}
	return d, nil
}

// ParseDeviceFile reads devices for a bulk add: CSV (name ending .csv;
// a header row naming the columns, id and public_key required) or JSON
// (an array of objects). Errors name the file and
// the line (CSV) or the entry (JSON); a duplicate id or PSK identity in
// the file is an error too.
func ParseDeviceFile(name string, r io.Reader) ([]*Device, error) {
	var (
		ds    []*Device
		where []string
	)
	add := func(at string, sp DeviceSpec) error {
		d, err := sp.Device()
		if err != nil {
			return fmt.Errorf("%s:%s: %w", name, at, err)
		}
		ds, where = append(ds, d), append(where, at)
		return nil
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".csv":
		cr := csv.NewReader(bufio.NewReaderSize(r, 1<<16))
		cr.ReuseRecord = true
		cr.TrimLeadingSpace = true
		head, err := cr.Read()
		if err != nil {
			return nil, fmt.Errorf("%s: header: %w", name, err)
		}
		col := map[string]int{}
		for i, h := range head {
			h = strings.ToLower(strings.TrimSpace(h))
			known := false
			for _, f := range deviceFields {
				known = known || f == h
			}
			if !known {
				return nil, fmt.Errorf("%s:1: unknown column %q (want %s)", name, h, strings.Join(deviceFields, ", "))
			}
			col[h] = i
		}
		if _, ok := col["id"]; !ok {
			return nil, fmt.Errorf("%s:1: no id column (want a header such as %s)", name, strings.Join(deviceFields[:4], ","))
		}
		cr.FieldsPerRecord = len(head)
		get := func(rec []string, f string) string {
			if i, ok := col[f]; ok {
				return rec[i]
			}
			return ""
		}
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					return nil, fmt.Errorf("%s:%d: %v", name, pe.Line, pe.Err)
				}
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			line, _ := cr.FieldPos(0)
			sp := DeviceSpec{ID: get(rec, "id"), PSKIdentity: get(rec, "psk_identity"), PSK: get(rec, "psk"), PublicKey: get(rec, "public_key"),
				KeyPin: get(rec, "key_pin"), Binding: get(rec, "binding"), HeartbeatTimeout: get(rec, "heartbeat_timeout")}
			if err := add(fmt.Sprint(line), sp); err != nil {
				return nil, err
			}
		}
	case ".json":
		br := bufio.NewReaderSize(r, 1<<16)
		dec := json.NewDecoder(br)
		dec.DisallowUnknownFields()
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		array := tok == json.Delim('[')
		if !array {
			return nil, fmt.Errorf("%s: want a JSON array of devices ([{\"id\": ..., \"public_key\": ...}, ...])", name)
		}
		for n := 1; dec.More(); n++ {
			var sp DeviceSpec
			if err := dec.Decode(&sp); err != nil {
				return nil, fmt.Errorf("%s: entry %d: %w", name, n, err)
			}
			if err := add(fmt.Sprintf("entry %d", n), sp); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("%s: want a .csv or .json file", name)
	}
	ids, psks := make(map[string]string, len(ds)), make(map[string]string, len(ds))
	for i, d := range ds {
		if at, dup := ids[d.ID]; dup {
			return nil, fmt.Errorf("%s:%s: device id %q given twice (first at %s)", name, where[i], d.ID, at)
		}
		ids[d.ID] = where[i]
		if d.PSKIdentity == "" {
			continue
		}
		if at, dup := psks[d.PSKIdentity]; dup {
			return nil, fmt.Errorf("%s:%s: psk_identity %q given twice (first at %s)", name, where[i], d.PSKIdentity, at)
		}
		psks[d.PSKIdentity] = where[i]
	}
	return ds, nil
}
