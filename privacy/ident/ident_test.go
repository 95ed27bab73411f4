package ident

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// Test values only: the IMSI of TS 33.501 Annex C.4 and made-up serials.
const (
	testIMSI  = "274012001002086"
	testICCID = "8949010000123456789"
	testIMEI  = "490154203237518"
)

func TestRedactedEverywhere(t *testing.T) {
	imsi, err := ParseIMSI(testIMSI)
	if err != nil {
		t.Fatal(err)
	}
	iccid, err := ParseICCID(testICCID)
	if err != nil {
		t.Fatal(err)
	}
	imei, err := ParseIMEI(testIMEI)
	if err != nil {
		t.Fatal(err)
	}
	msisdn, err := ParseMSISDN("+491701234567")
	if err != nil {
		t.Fatal(err)
	}
	vals := []any{imsi, iccid, imei, msisdn, &imsi, struct{ A IMSI }{imsi}}
	var out bytes.Buffer
	for _, v := range vals {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(j)
	}
	log := slog.New(slog.NewJSONHandler(&out, nil))
	log.Info("x", "imsi", imsi, "iccid", iccid, "imei", imei, "msisdn", msisdn)
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "imsi", imsi)
	for _, secret := range []string{testIMSI, testICCID, testIMEI, "1701234567", "001002086"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("output contains %s:\n%s", "a secret", out.String())
		}
	}
	if !strings.Contains(out.String(), "imsi(redacted)") {
		t.Errorf("no redacted marker in output")
	}
	if imsi.Reveal() != testIMSI || iccid.Reveal() != testICCID || imei.Reveal() != testIMEI {
		t.Errorf("Reveal lost digits")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		kind, in string
		ok       bool
	}{
		{"imsi", "262011234567890", true},
		{"imsi", "26201123456789012", false},
		{"imsi", "2620A", false},
		{"imsi", "", false},
		{"iccid", "89490100001234567890", true},
		{"iccid", "8949010000123456789F", true},
		{"iccid", "898821000000000000A", true},
		{"iccid", "8949", false},
		{"iccid", "89490100X0123456789", false},
		{"imei", "35000000000000", true},
		{"imei", "3500000000000001", true},
		{"imei", "35-0000000000000", false},
	} {
		var err error
		switch tc.kind {
		case "imsi":
			_, err = ParseIMSI(tc.in)
		case "iccid":
			_, err = ParseICCID(tc.in)
		case "imei":
			_, err = ParseIMEI(tc.in)
		}
		if (err == nil) != tc.ok {
			t.Errorf("%s %q: err=%v, want ok=%v", tc.kind, tc.in, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			if tc.in != "" && strings.Contains(err.Error(), tc.in) {
				t.Errorf("error repeats the input: %v", err)
			}
		}
	}
}

func TestEqual(t *testing.T) {
	a, _ := ParseIMSI(testIMSI)
	b, _ := ParseIMSI(testIMSI)
	c, _ := ParseIMSI("262011234567890")
	if !a.Equal(b) || a.Equal(c) || a.Equal(IMSI{}) {
		t.Fatal("Equal wrong")
	}
	if (IMSI{}).String() != "imsi(unknown)" {
		t.Fatal((IMSI{}).String())
	}
}
