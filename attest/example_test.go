package attest_test

import (
	"bytes"
	"encoding/hex"
	"fmt"

	"github.com/mtcagent/mtcagent/attest"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// Concealing the TS 33.501 Annex C.4.3 IMSI for the Profile A vector key,
// with the vector's ephemeral key given as the randomness.
func ExampleConceal() {
	hnPub, _ := hex.DecodeString("5a8d38864820197c3394b92613b20b91633cbd897119273bf8e4a6f4eec0a650")
	eph, _ := hex.DecodeString("c80949f13ebe61af4ebdbd293ea4f942696b9e815d7e8f0096bbf6ed7de62256")
	hn := &attest.HNPublicKey{Scheme: attest.SchemeProfileA, KeyID: 1, Key: hnPub, RoutingIndicator: "0", MNCDigits: 3}
	imsi, _ := ident.ParseIMSI("274012001002086")
	s, err := attest.Conceal(hn, imsi, bytes.NewReader(eph))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s)
	// Output:
	// suci-0-274-012-0-1-1-b2e92f836055a255837debf850b528997ce0201cb82adfe4be1f587d07d8457dcb02352410cddd9e730ef3fa87
}

// A recipient's pseudonyms are stable for that recipient and differ for
// another one.
func ExampleDeriver_Pseudonyms() {
	d, _ := attest.NewDeriver(bytes.Repeat([]byte{1}, 32))
	imsi, _ := ident.ParseIMSI("001010123456789")
	iccid, _ := ident.ParseICCID("8900100000000000001")
	a := d.Pseudonyms("operator", imsi, iccid)
	b := d.Pseudonyms("utility", imsi, iccid)
	fmt.Println(len(a.IMSI), a.Equal(d.Pseudonyms("operator", imsi, iccid)), a.Equal(b))
	// Output: 16 true false
}

func ExampleDecodeTokenText() {
	for _, s := range []string{"d28443a10127", "0oRDoQEn", "not a token"} {
		fmt.Printf("%x\n", attest.DecodeTokenText([]byte(s)))
	}
	// Output:
	// d28443a10127
	// d28443a10127
	// 6e6f74206120746f6b656e
}
