package attest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Fictional test identifiers.
func testSIM(t testing.TB, imsi, iccid string) (ident.IMSI, ident.ICCID) {
	t.Helper()
	i, err := ident.ParseIMSI(imsi)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ident.ParseICCID(iccid)
	if err != nil {
		t.Fatal(err)
	}
	return i, c
}

func testDeriver(t testing.TB, seed byte) *Deriver {
	t.Helper()
	d, err := NewDeriver(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestPerRecipientIdentifiers(t *testing.T) {
	d := testDeriver(t, 7)
	imsi, iccid := testSIM(t, "001010123456789", "8900100000000000001")
	imsi2, iccid2 := testSIM(t, "001010987654321", "8900100000000000027")

	ua, ub := d.UEID("operator"), d.UEID("utility")
	if len(ua) != 17 || ua[0] != UEIDTypeRAND {
		t.Fatalf("ueid shape: %d bytes, type %#x", len(ua), ua[0])
	}
	if bytes.Equal(ua, ub) {
		t.Fatal("two recipients share a UEID")
	}
	if !bytes.Equal(ua, d.UEID("operator")) {
		t.Fatal("UEID not stable for one recipient")
	}
	if bytes.Equal(ua, testDeriver(t, 8).UEID("operator")) {
		t.Fatal("two devices share a UEID")
	}

	pa, pb := d.Pseudonyms("operator", imsi, iccid), d.Pseudonyms("utility", imsi, iccid)
	if len(pa.IMSI) != PseudonymSize || len(pa.ICCID) != PseudonymSize {
		t.Fatal("pseudonym size")
	}
	if pa.IMSI.Equal(pb.IMSI) || pa.ICCID.Equal(pb.ICCID) {
		t.Fatal("two recipients share a pseudonym")
	}
	if pa.IMSI.Equal(pa.ICCID) {
		t.Fatal("imsi and iccid pseudonyms coincide")
	}
	if !pa.Equal(d.Pseudonyms("operator", imsi, iccid)) {
		t.Fatal("pseudonyms not stable for one recipient")
	}
	pc := d.Pseudonyms("operator", imsi2, iccid2)
	if pc.IMSI.Equal(pa.IMSI) || pc.ICCID.Equal(pa.ICCID) {
		t.Fatal("SIM change did not change the pseudonyms")
	}
	// Recipient names are not ambiguous with the label boundary.
	if bytes.Equal(d.UEID("a"), d.UEID("a\x00")) {
		t.Fatal("ueid collision")
	}
	none := d.Pseudonyms("operator", ident.IMSI{}, ident.ICCID{})
	if len(none.IMSI) != 0 || len(none.ICCID) != 0 || none.IMSI.String() != "none" {
		t.Fatal("no SIM should give empty pseudonyms")
	}
	if strings.Contains(d.String(), "07") {
		t.Fatal("deriver String shows the secret")
	}
}

func TestIMEIUEID(t *testing.T) {
	imei, err := ident.ParseIMEI("490154203237518") // the well-known example IMEI
	if err != nil {
		t.Fatal(err)
	}
	u, err := IMEIUEID(imei)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{3, 4, 9, 0, 1, 5, 4, 2, 0, 3, 2, 3, 7, 5, 1}
	if !bytes.Equal(u, want) {
		t.Fatalf("imei ueid %x, want %x", u, want)
	}
	if _, err := IMEIUEID(ident.IMEI{}); err == nil {
		t.Fatal("empty imei accepted")
	}
}
