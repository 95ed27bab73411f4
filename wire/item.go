package wire

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// itemDec decodes what a device sends to be kept as it came (a report, a
// measurement record): within bounds no honest encoder comes near.
var itemDec = func() cbor.DecMode {
	m, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxArrayElements: 4096,
		MaxMapPairs:      4096,
		MaxNestedLevels:  16,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// CheckItem reports whether b is exactly one valid CBOR data item, so that
// what is stored as it came can be read and re-encoded later.
// cbor.Wellformed is not enough: a tag around the wrong content (a
// date-time tag around an integer, say) is well-formed, and then fails
// every reader.
func CheckItem(b []byte) error {
	_, err := DecodeItem(b)
	return err
}

// DecodeItem decodes one valid CBOR data item into an empty interface,
// which checks the content of every tag, at any depth, and that no map
// has a key twice. Its errors never quote the item's content.
func DecodeItem(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, errors.New("empty, not a CBOR item")
	}
	var v any
	err := itemDec.Unmarshal(b, &v)
	// The library's message quotes the duplicate key, which is the
	// sender's data: it goes to logs, so say where it is, not what.
	if dup := (*cbor.DupMapKeyError)(nil); errors.As(err, &dup) {
		return nil, fmt.Errorf("cbor: duplicate map key at map element index %d", dup.Index)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}
