package atmodem_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/atmodem/at"
	"github.com/mtcagent/mtcagent/atmodem/modemsim"
)

// TestSimFlap: the simulator's flap step ping-pongs the serving cell,
// one +CEREG URC per hop, alternating, the last cell staying; a flap with
// fewer than two cells is refused.
func TestSimFlap(t *testing.T) {
	s, path := startSim(t, `{"dialect": "generic"}`)
	var mu sync.Mutex
	var urcs []string
	sixth := make(chan struct{})
	e := openEngine(t, path, nil, at.WithHandler("+CEREG:", func(l string) {
		mu.Lock()
		urcs = append(urcs, l)
		if len(urcs) == 6 {
			close(sixth)
		}
		mu.Unlock()
	}))
	ctx, cancel := context.WithTimeout(context.Background(), slow(5*time.Second))
	defer cancel()
	if _, err := e.Command(ctx, "AT+CEREG=2"); err != nil {
		t.Fatal(err)
	}
	s.Flap(modemsim.Flap{Cells: []uint64{0x1A2D102, 0x1A2D103}, Times: 6})
	select {
	case <-sixth:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("%d of 6 URCs", len(urcs))
	}
	mu.Lock()
	defer mu.Unlock()
	for i, l := range urcs {
		want := []string{`"01A2D102"`, `"01A2D103"`}[i%2]
		if !strings.Contains(l, want) {
			t.Fatalf("URC %d = %q, want cell %s", i, l, want)
		}
	}
	for _, bad := range []string{
		`{"timeline": [{"at": "1s", "flap": {"cells": [1], "times": 3}}]}`,
		`{"timeline": [{"at": "1s", "flap": {"cells": [1, 2], "times": 0}}]}`,
	} {
		if _, err := modemsim.Parse([]byte(bad)); err == nil {
			t.Fatalf("accepted %s", bad)
		}
	}
	if _, err := modemsim.Parse([]byte(`{"timeline": [{"at": "1s", "flap": {"cells": [1, 2], "times": 10000, "every": "1ms"}}]}`)); err != nil {
		t.Fatal(err)
	}
}
