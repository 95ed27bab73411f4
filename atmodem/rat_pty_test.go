package atmodem_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem"
)

// The simulator answers the serving-cell query in the form each radio
// gives, and the dialects read the radio and the cell from it.
func TestServingCellPerRadio(t *testing.T) {
	for _, tc := range []struct {
		dialect string
		act     int
		rat     string
		hasTAC  bool
	}{
		{"quectel", 0, "gsm", false},
		{"quectel", 2, "wcdma", false},
		{"quectel", 7, "lte", true},
		{"quectel", 11, "nr5g-sa", true},
		{"quectel", 13, "lte", true}, // EN-DC: the LTE anchor wins
		{"simcom", 0, "gsm", false},
		{"simcom", 2, "wcdma", false},
		{"simcom", 7, "lte", true},
		{"simcom", 11, "nr5g-sa", true},
	} {
		t.Run(fmt.Sprintf("%s/act%d", tc.dialect, tc.act), func(t *testing.T) {
			_, path := startSim(t, fmt.Sprintf(`{"dialect": %q, "network": {"act": %d}}`, tc.dialect, tc.act))
			e := openEngine(t, path, nil)
			m := atmodem.NewModem(e, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.Init(ctx); err != nil {
				t.Fatal(err)
			}
			st, err := m.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c := st.Cell
			if c == nil || c.RAT != tc.rat || c.CellID == nil || (c.TAC != nil) != tc.hasTAC || (c.LAC != nil) == tc.hasTAC {
				t.Fatalf("cell %+v, want RAT %s with a cell id and a %s", c, tc.rat, map[bool]string{true: "TAC", false: "LAC"}[tc.hasTAC])
			}
		})
	}
}
