package privacy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mtcagent/mtcagent/internal/config"
)

const testConfig = `
[agent]
modem = auto

[privacy]
device_class = default
padding = on
schedule = 15m
audit_max = 64KiB

[recipient "operator"]
identity = psk:operator-1
status = full
location = precise
cell = full
identity_disclosure = suci
radio = full

[recipient "scs-home"]
identity = x509-sha256:ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789
status = reachable
location = region:2km

[recipient "nothing"]
identity = rpk-sha256:0000000000000000000000000000000000000000000000000000000000000000
`

func mustPolicy(t testing.TB, text string) *Policy {
	t.Helper()
	f, err := config.Parse("test.conf", text)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParsePolicy(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParsePolicy(t *testing.T) {
	p := mustPolicy(t, testConfig)
	if !p.Padding || p.Schedule != 15*time.Minute || p.AuditMax != 64<<10 || p.DeviceClass != DeviceDefault {
		t.Fatalf("privacy section: %+v", p)
	}
	if len(p.Recipients()) != 3 {
		t.Fatalf("recipients: %d", len(p.Recipients()))
	}
	g, ok := p.Grants("scs-home")
	want := Grants{Status: StatusReachable, Location: LocationRegion, GridMeters: 2000}
	if !ok || g != want {
		t.Fatalf("scs-home grants %+v, want %+v", g, want)
	}
	if g.String() != "status=reachable location=region:2km" {
		t.Fatalf("grants string %q", g.String())
	}
	g, _ = p.Grants("operator")
	if g.String() != "status=full location=precise cell=full identity=suci radio=full" {
		t.Fatalf("operator grants %q", g.String())
	}
	if g, ok := p.Grants("nothing"); !ok || g != (Grants{}) || g.String() != "nothing" {
		t.Fatalf("nothing grants %+v", g)
	}
	if _, ok := p.Grants("stranger"); ok {
		t.Fatal("unknown recipient has grants")
	}
	r, ok := p.RecipientByIdentity("x509-sha256:abcdef0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789")
	if !ok || r.Name != "scs-home" {
		t.Fatalf("by identity: %v %v", r.Name, ok)
	}
	if _, ok := p.RecipientByIdentity("psk:operator-2"); ok {
		t.Fatal("unknown identity matched")
	}
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		text string
		line int
		msg  string
	}{
		{"[recipient \"a\"]\nidentity = psk:a\nstatus = sometimes\n", 3, `status "sometimes": want none|reachable|full`},
		{"[recipient \"a\"]\nidentity = psk:a\nlocation = region\n", 3, "needs a grid size"},
		{"[recipient \"a\"]\nidentity = psk:a\nlocation = region:2\n", 3, "needs a unit"},
		{"[recipient \"a\"]\nidentity = psk:a\nlocation = region:10m\n", 3, "outside 100m..500km"},
		{"[recipient \"a\"]\nidentity = psk:a\nlocation = region:-2km\n", 3, "not a positive number"},
		{"[recipient \"a\"]\nidentity = psk:a\ncell = tac\n", 3, "want none|tracking_area|full"},
		{"[recipient \"a\"]\nidentity = psk:a\nidentity_disclosure = imsi\n", 3, "want none|pseudonym|suci"},
		{"[recipient \"a\"]\nidentity = psk:a\nradio = some\n", 3, "want none|full"},
		{"[recipient \"a\"]\nidentity = psk:a\nstatuss = full\n", 3, `unknown key "statuss"`},
		{"[recipient \"a\"]\nstatus = full\n", 1, "identity is required"},
		{"[recipient \"a\"]\nidentity = tls:a\n", 2, "identity kind"},
		{"[recipient \"a\"]\nidentity = x509-sha256:abc\n", 2, "64 hex digits"},
		{"[recipient]\nidentity = psk:a\n", 1, "needs a name"},
		{"[recipient \"a\"]\nidentity = psk:a\n[recipient \"a\"]\nidentity = psk:b\n", 3, "defined twice"},
		{"[recipient \"a\"]\nidentity = psk:a\n[recipient \"b\"]\nidentity = psk:a\n", 4, `already used by recipient "a"`},
		{"[privacy]\ndevice_class = secret\n", 2, "want default or no_location_tracking"},
		{"[privacy]\npadding = yes\n", 2, "want on or off"},
		{"[privacy]\nschedule = soon\n", 2, "want a duration"},
		{"[privacy]\nschedule = 500ms\n", 2, "outside 1s..24h"},
		{"[privacy]\nschedule = 7s\n", 2, "does not divide a day"},
		{"[privacy]\nschedule = 7m\n", 2, "does not divide a day"},
		{"[privacy]\naudit_max = 1KiB\n", 2, "outside 4KiB..64MiB"},
		{"[privacy]\naudit_max = lots\n", 2, "want a size"},
		{"[privacy]\nlocation = none\n", 2, `unknown key "location"`},
		{"[privacy \"x\"]\n", 1, "takes no label"},
		{"[privacy]\n[privacy]\n", 2, "appears 2 times"},
	} {
		f, err := config.Parse("p.conf", tc.text)
		if err != nil {
			t.Fatalf("%q: parse: %v", tc.text, err)
		}
		_, err = ParsePolicy(f)
		var ce *config.Error
		if !errors.As(err, &ce) {
			t.Errorf("%q: error %v, want a *config.Error", tc.text, err)
			continue
		}
		if ce.Line != tc.line || ce.Path != "p.conf" || !strings.Contains(ce.Msg, tc.msg) {
			t.Errorf("%q: got %v, want line %d containing %q", tc.text, err, tc.line, tc.msg)
		}
	}
}

func TestParseMeters(t *testing.T) {
	for in, want := range map[string]int{"2km": 2000, "500m": 500, "1.5km": 1500, "100m": 100, "500km": 500000} {
		got, err := parseMeters(in)
		if err != nil || got != want {
			t.Errorf("parseMeters(%q) = %d, %v; want %d", in, got, err, want)
		}
		if formatMeters(got) != in && in != "1.5km" {
			t.Errorf("formatMeters(%d) = %q", got, formatMeters(got))
		}
	}
}
