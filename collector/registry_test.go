package collector

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
)

// regDevice is a device to register, with a fresh key (and a PSK when
// pskID is set).
func regDevice(t testing.TB, id, pskID string) *Device {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := &Device{ID: id, PublicKey: pub}
	if pskID != "" {
		d.PSKIdentity, d.PSK = pskID, make([]byte, 16)
		rand.Read(d.PSK)
	}
	if err := CheckDevice(d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRegistry: add, look up, duplicates, remove, SCSs and grants on both
// backends.
func TestRegistry(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := b.open(t, t.TempDir())
			defer st.Close()
			d1, d2 := regDevice(t, "d1", "d1-id"), regDevice(t, "d2", "d2-id")
			if err := st.AddDevices(ctx, []*Device{d1, d2}, false); err != nil {
				t.Fatal(err)
			}
			var dup *DuplicateError
			if err := st.AddDevices(ctx, []*Device{regDevice(t, "d1", "other")}, false); !errors.As(err, &dup) || dup.What != "device id" || dup.Value != "d1" {
				t.Fatalf("duplicate id: %v", err)
			}
			if err := st.AddDevices(ctx, []*Device{regDevice(t, "d3", "d2-id")}, false); !errors.As(err, &dup) || dup.What != "device psk identity" || dup.Value != "d2-id" {
				t.Fatalf("duplicate psk identity: %v", err)
			}
			if d, _ := st.DeviceByID(ctx, "d3"); d != nil {
				t.Fatal("a failed batch left a device")
			}
			for name, look := range map[string]func() (*Device, error){
				"id":  func() (*Device, error) { return st.DeviceByID(ctx, "d2") },
				"psk": func() (*Device, error) { return st.DeviceByPSK(ctx, "d2-id") },
				"pin": func() (*Device, error) { return st.DeviceByPin(ctx, d2.KeyPin) },
			} {
				d, err := look()
				if err != nil || d == nil || d.ID != "d2" || !d.PublicKey.Equal(d2.PublicKey) || string(d.PSK) != string(d2.PSK) {
					t.Fatalf("by %s: %+v %v", name, d, err)
				}
			}
			// Replace keeps the id, moves the PSK identity.
			r := regDevice(t, "d2", "d2-new")
			if err := st.AddDevices(ctx, []*Device{r}, true); err != nil {
				t.Fatal(err)
			}
			if d, _ := st.DeviceByPSK(ctx, "d2-id"); d != nil {
				t.Fatal("old psk identity still finds the replaced device")
			}
			if n, err := st.CountDevices(ctx); err != nil || n != 2 {
				t.Fatalf("count %d %v", n, err)
			}
			x := &SCS{Name: "alpha", PSKIdentity: "alpha", PSK: []byte("0123456789abcdef")}
			if err := st.AddSCS(ctx, x, false); err != nil {
				t.Fatal(err)
			}
			if err := st.AddSCS(ctx, &SCS{Name: "beta", PSKIdentity: "alpha", PSK: x.PSK}, false); !errors.As(err, &dup) || dup.What != "scs psk identity" {
				t.Fatalf("duplicate scs psk identity: %v", err)
			}
			if err := st.Grant(ctx, "nobody", []string{"d1"}, []string{ClassStatus}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("grant for an unknown scs: %v", err)
			}
			if err := st.Grant(ctx, "alpha", []string{"d1", "d2"}, []string{ClassStatus, ClassEvents}); err != nil {
				t.Fatal(err)
			}
			if err := st.Revoke(ctx, "alpha", []string{"d1"}, []string{ClassEvents}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				dev, class string
				want       bool
			}{{"d1", ClassStatus, true}, {"d1", ClassEvents, false}, {"d2", ClassEvents, true}, {"d2", ClassTrigger, false}} {
				if ok, err := st.Granted(ctx, "alpha", c.dev, c.class); err != nil || ok != c.want {
					t.Errorf("granted %s %s: %v %v, want %v", c.dev, c.class, ok, err, c.want)
				}
			}
			if gs, err := st.Grants(ctx, "alpha"); err != nil || len(gs) != 2 || len(gs[1].Classes) != 2 {
				t.Fatalf("grants %+v %v", gs, err)
			}
			if err := st.RemoveDevice(ctx, "d2"); err != nil {
				t.Fatal(err)
			}
			if err := st.RemoveDevice(ctx, "d2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("remove twice: %v", err)
			}
			if ok, _ := st.Granted(ctx, "alpha", "d2", ClassEvents); ok {
				t.Fatal("a removed device's grant survives")
			}
			if d, _ := st.DeviceByPSK(ctx, "d2-new"); d != nil {
				t.Fatal("a removed device is found by its psk identity")
			}
			if err := st.RemoveSCS(ctx, "alpha"); err != nil {
				t.Fatal(err)
			}
			if gs, _ := st.Grants(ctx, ""); len(gs) != 0 {
				t.Fatalf("grants of a removed scs: %+v", gs)
			}
			if x, _ := st.SCSByPSK(ctx, "alpha"); x != nil {
				t.Fatal("removed scs found")
			}
		})
	}
}
