package transcript_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mtcagent/mtcagent/atmodem/transcript"
)

func ExampleReplayer() {
	tr, err := transcript.Parse("csq.txt", strings.NewReader(`# source: example
# kind: synthetic
> AT+CSQ
< +CSQ: 20,99
< OK
> AT+CESQ
< +CESQ: 99,99,255,255,22,46
< OK
`))
	if err != nil {
		panic(err)
	}
	r := transcript.NewReplayer(tr)
	io.WriteString(r, "AT+CSQ\r")
	buf := make([]byte, 64)
	n, _ := io.ReadAtLeast(r, buf, len("\r\n+CSQ: 20,99\r\n\r\nOK\r\n"))
	fmt.Printf("%q\n", buf[:n])

	// The host skips AT+CESQ: Close names the step never used.
	err = r.Close()
	fmt.Println(errors.Is(err, transcript.ErrUnused))
	fmt.Println(err)
	// Output:
	// "\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
	// true
	// transcript csq.txt: 3 step(s) never used, first step 4 (line 6): > AT+CESQ
}

func ExampleRecorder() {
	port := struct {
		io.Reader
		io.Writer
	}{strings.NewReader("ATE0\r\r\nOK\r\n"), io.Discard}
	rec := transcript.NewRecorder(port)
	io.WriteString(rec, "ATE0\r")
	io.ReadAll(rec)
	rec.Transcript("echo.txt", "source: ExampleRecorder", "kind: synthetic").WriteTo(os.Stdout)
	// Output:
	// # source: ExampleRecorder
	// # kind: synthetic
	// > ATE0
	// << ATE0\r
	// < OK
}
