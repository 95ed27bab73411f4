package agent

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// docs/mdt.md describes only what exists: nothing on the network side
// starts, configures or consents to a logging session (there is no such
// uplink request), so the page must not say the collector can.
func TestMDTDocsNoRemoteSession(t *testing.T) {
	b, err := os.ReadFile("../docs/mdt.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(b)), " ") // one line, single spaces
	claim := regexp.MustCompile(`(?i)(when|if|unless) the collector (configures|starts|sets up|requests|asks for)`)
	if m := claim.FindString(doc); m != "" {
		t.Errorf("docs/mdt.md claims a network path that does not exist: %q", m)
	}
	for _, want := range []string{
		"the collector cannot start, configure or extend a session",
		"Nothing that arrives over the network can consent",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/mdt.md does not say %q", want)
		}
	}
}
