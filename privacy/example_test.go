package privacy_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mtcagent/mtcagent/internal/config"
	"github.com/mtcagent/mtcagent/privacy"
)

// A recipient granted "reachable" learns one boolean; the report time is
// the start of the 15-minute slot, not the moment of the reading.
func ExamplePolicy_View() {
	f, _ := config.Parse("mtcagent.conf", `
[recipient "scs-home"]
identity = psk:scs-home
status = reachable
`)
	pol, err := privacy.ParsePolicy(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	snap := privacy.Snapshot{
		Time:   time.Date(2026, 11, 23, 16, 7, 30, 0, time.UTC),
		Status: privacy.StatusConnected,
		Cell:   &privacy.Cell{MCC: "262", MNC: "01"},
	}
	r, _ := pol.View("scs-home", snap)
	j, _ := json.Marshal(r)
	fmt.Println(r)
	fmt.Println(string(j))
	_, err = pol.View("someone-else", snap)
	fmt.Println(err)
	// Output:
	// privacy.Report{to="scs-home" carries=status=reachable}
	// {"v":1,"t":1795449600,"carries":{"status":"reachable"},"reachable":true}
	// privacy: view for recipient "someone-else": unknown recipient
}

// Invalid policy is refused with the file, the line and the reason.
func ExampleParsePolicy() {
	f, _ := config.Parse("mtcagent.conf", "[recipient \"scs\"]\nidentity = psk:scs\nlocation = region:50m\n")
	_, err := privacy.ParsePolicy(f)
	fmt.Println(err)
	// Output:
	// mtcagent.conf:3: recipient "scs": grid size "50m" outside 100m..500km
}
