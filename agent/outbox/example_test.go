package outbox_test

import (
	"fmt"
	"os"

	"github.com/mtcagent/mtcagent/agent/outbox"
)

// The uplink's loop in miniature: queue, deliver in order, acknowledge.
func Example() {
	dir, err := os.MkdirTemp("", "outbox-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	o, err := outbox.Open(dir, outbox.Options{MaxMessages: 100})
	if err != nil {
		panic(err)
	}
	for _, m := range []string{"sim_removed", "cell_changed", "heartbeat"} {
		if _, err := o.Append([]byte(m)); err != nil {
			panic(err)
		}
	}
	msgs, _ := o.Pending(2)
	for _, m := range msgs {
		fmt.Println("send", m.ID, string(m.Data))
	}
	// The collector confirmed both: one Ack covers everything up to id 2.
	if err := o.Ack(msgs[len(msgs)-1].ID); err != nil {
		panic(err)
	}
	o.Close()

	// After a restart only the unacknowledged message is left.
	o, err = outbox.Open(dir, outbox.Options{})
	if err != nil {
		panic(err)
	}
	defer o.Close()
	n, size := o.Len()
	fmt.Println("waiting:", n, "messages,", size, "bytes")
	id, _ := o.Append([]byte("connectivity-back"))
	fmt.Println("next id:", id)
	// Output:
	// send 1 sim_removed
	// send 2 cell_changed
	// waiting: 1 messages, 9 bytes
	// next id: 4
}
