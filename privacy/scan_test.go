package privacy

import (
	"encoding/hex"
	"testing"
)

func TestScanForIdentifiers(t *testing.T) {
	tb, _ := tbcd(testIMSI)
	for _, tc := range []struct {
		name string
		data []byte
		want []Hit
	}{
		{"clean", []byte(`{"reachable":true,"suci":"suci-0-274-012-0-1-1-b2e92f8360"}`), nil},
		{"ascii", []byte("imsi=" + testIMSI + "\n"), []Hit{{0, 5, "ascii"}}},
		{"tail only", []byte("msin 2001002086"), []Hit{{0, 5, "ascii-tail"}}},
		{"tbcd", append([]byte{0x01, 0x08}, tb...), []Hit{{0, 2, "tbcd"}}},
		{"tbcd hex upper", []byte("AT+CRSM: 144,0,\"" + upper(hex.EncodeToString(tb)) + "\""), []Hit{{0, 16, "tbcd-hex"}}},
		{"ascii hex", []byte("x" + hex.EncodeToString([]byte(testIMEI))), []Hit{{2, 1, "ascii-hex"}}},
		{"two ids", []byte(testICCID + " " + testIMEI), []Hit{{1, 0, "ascii"}, {2, 20, "ascii"}}},
		{"twice", []byte(testIMEI + testIMEI), []Hit{{2, 0, "ascii"}, {2, 15, "ascii"}}},
	} {
		got := ScanForIdentifiers(tc.data, testIMSI, testICCID, testIMEI)
		if len(got) != len(tc.want) {
			t.Errorf("%s: %d hits, want %d: %v", tc.name, len(got), len(tc.want), got)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: hit %d = %+v, want %+v", tc.name, i, got[i], tc.want[i])
			}
		}
	}
	if h := ScanForIdentifiers([]byte("12345"), "123"); h != nil {
		t.Errorf("short id matched: %v", h)
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 32
		}
	}
	return string(b)
}
