package ident

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestKeyRedacted(t *testing.T) {
	raw := bytes.Repeat([]byte{0xA5, 0x3C}, 16)
	k := NewKey(raw)
	var out bytes.Buffer
	for _, v := range []any{k, &k, struct{ K Key }{k}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(j)
	}
	// Without the time: its digits could hold "165" (0xA5 in decimal).
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}
	slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{ReplaceAttr: noTime})).Info("x", "key", k)
	s := strings.ToLower(out.String())
	if strings.Contains(s, hex.EncodeToString(raw[:4])) || bytes.Contains(out.Bytes(), raw[:4]) || strings.Contains(s, "165") {
		t.Fatal("key material in output")
	}
	if !strings.Contains(s, "key(redacted)") {
		t.Fatal("no redaction marker")
	}
	if !bytes.Equal(k.Reveal(), raw) || k.Len() != 32 || k.IsZero() {
		t.Fatal("Reveal/Len/IsZero wrong")
	}
	r := k.Reveal()
	r[0] ^= 1
	if !bytes.Equal(k.Reveal(), raw) {
		t.Fatal("Reveal aliases the key")
	}
	if !k.Equal(NewKey(raw)) || k.Equal(NewKey(raw[:31])) || (Key{}).String() != "key(unknown)" {
		t.Fatal("Equal/zero wrong")
	}
}
