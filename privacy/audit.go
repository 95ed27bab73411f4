package privacy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mtcagent/mtcagent/internal/fsutil"
)

// AuditFile is the name of the disclosure audit log in the state directory;
// the previous file after rotation has ".1" appended.
const AuditFile = "privacy-audit.log"

// AuditEntry is one disclosure: metadata only, never the values sent.
type AuditEntry struct {
	Time      time.Time         `json:"time"`
	Recipient string            `json:"recipient"`
	Carries   map[string]string `json:"carries"` // class -> precision
	Size      int               `json:"size"`    // bytes sent
}

// Audit appends disclosures to <state-dir>/privacy-audit.log as JSON lines.
// When the file would grow past Max bytes it is renamed to .1 (replacing
// the older one) and a new file is started, so the log never takes more
// than twice Max. An Audit is safe for concurrent use; one process (the
// daemon) should own the file.
type Audit struct {
	path string
	max  int64
	mu   sync.Mutex
}

// OpenAudit returns the audit log in dir, capped at max bytes per file
// (DefaultAuditMax when max <= 0).
func OpenAudit(dir string, max int64) *Audit {
	if max <= 0 {
		max = DefaultAuditMax
	}
	return &Audit{path: filepath.Join(dir, AuditFile), max: max}
}

// Path is the current audit file.
func (a *Audit) Path() string { return a.path }

// Record appends the disclosure of r, encoded to size bytes, sent at t.
func (a *Audit) Record(t time.Time, r Report, size int) error {
	carries := map[string]string{}
	for c, p := range r.Carries() {
		carries[c.String()] = p
	}
	return a.Append(AuditEntry{Time: t.UTC(), Recipient: r.Recipient(), Carries: carries, Size: size})
}

// Disclose is the way to send a report: it encodes r and records the
// disclosure, and returns the bytes only when the record is written. A
// report that cannot be audited is not sent (fail closed).
func (a *Audit) Disclose(r Report, now time.Time) ([]byte, error) {
	b, err := r.Encode()
	if err != nil {
		return nil, err
	}
	if err := a.Record(now, r, len(b)); err != nil {
		return nil, err
	}
	return b, nil
}

// Append writes one entry, durably: it is on disk when Append returns nil
// (Disclose sends nothing before that).
func (a *Audit) Append(e AuditEntry) error {
	if e.Carries == nil {
		e.Carries = map[string]string{}
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("privacy: audit: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if st, err := os.Stat(a.path); err == nil && st.Size()+int64(len(line))+1 > a.max {
		if err := os.Rename(a.path, a.path+".1"); err != nil {
			return fmt.Errorf("privacy: audit: rotate: %w", err)
		}
	}
	if err := fsutil.AppendLine(a.path, line, 0o600); err != nil {
		return fmt.Errorf("privacy: audit: %w", err)
	}
	return nil
}

// ReadAudit returns the entries of the audit log in dir, oldest first
// (rotated file, then current). Lines that do not parse (a write cut by a
// power loss) are skipped and counted in skipped. A missing log is empty.
func ReadAudit(dir string) (entries []AuditEntry, skipped int, err error) {
	base := filepath.Join(dir, AuditFile)
	for _, p := range []string{base + ".1", base} {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("privacy: read audit: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var e AuditEntry
			if json.Unmarshal(line, &e) != nil || e.Time.IsZero() {
				skipped++
				continue
			}
			entries = append(entries, e)
		}
		if sc.Err() != nil {
			skipped++
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].Time.Before(entries[j].Time) })
	return entries, skipped, nil
}

// AuditLog is the audit log of a state directory as `mtcagent privacy
// audit` shows it; its JSON is that of --json.
type AuditLog struct {
	Log     string       `json:"log"`     // the file's path
	Entries []AuditEntry `json:"entries"` // oldest first, never nil
	Skipped int          `json:"skipped"` // lines that did not parse
}

// ReadAuditLog is ReadAudit of dir, with only the disclosures to recipient
// if it is not "".
func ReadAuditLog(dir, recipient string) (AuditLog, error) {
	entries, skipped, err := ReadAudit(dir)
	if err != nil {
		return AuditLog{}, err
	}
	l := AuditLog{Log: filepath.Join(dir, AuditFile), Entries: []AuditEntry{}, Skipped: skipped}
	for _, e := range entries {
		if recipient == "" || e.Recipient == recipient {
			l.Entries = append(l.Entries, e)
		}
	}
	return l, nil
}

// WriteText writes the log for people: one line per disclosure, the
// classes carried at their precision in the order of Classes.
func (l AuditLog) WriteText(w io.Writer) {
	if len(l.Entries) == 0 {
		fmt.Fprintf(w, "No disclosures recorded in %s.\n", l.Log)
		return
	}
	fmt.Fprintf(w, "Disclosures recorded in %s (oldest first, times in UTC):\n\n", l.Log)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tRECIPIENT\tBYTES\tDISCLOSED")
	for _, e := range l.Entries {
		var carries []string
		for _, cl := range Classes() {
			if p, ok := e.Carries[cl.String()]; ok {
				carries = append(carries, cl.String()+"="+p)
			}
		}
		if carries == nil {
			carries = []string{"nothing"}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.Time.UTC().Format(time.DateTime), e.Recipient, e.Size, strings.Join(carries, " "))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d disclosures.\n", len(l.Entries))
}
