package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mtcagent/mtcagent/collector"
	"github.com/mtcagent/mtcagent/internal/cli"
)

// storeArgs is how the registry commands find the store: a running
// serve's admin socket in --state, else the store itself.
const storeArgs = "[--state DIR] [--store PATH|postgres://...]"

func init() {
	app.Register(&cli.Command{
		Name:    "device",
		Summary: "provision devices in the store (a running serve sees changes at once)",
		Subs: []*cli.Command{
			{Name: "add", Args: "ID --public-key PEMFILE|HEX [--psk-identity ID --psk HEX|-] [--key-pin HEX] [--binding 'IMSI ICCID'] [--heartbeat-timeout DUR] " + storeArgs + " | --from FILE.csv|FILE.json " + storeArgs,
				Summary: "register a device, or many from a CSV or JSON file (one transaction)", Run: runDeviceAdd},
			{Name: "list", Args: "[--json] " + storeArgs, Summary: "list the registered devices (PSKs as fingerprints)", Run: runDeviceList},
			{Name: "show", Args: "ID [--json] " + storeArgs, Summary: "show one device and its grants (the PSK as a fingerprint)", Run: runDeviceShow},
			{Name: "remove", Args: "ID " + storeArgs, Summary: "unregister a device and its grants: its next handshake is refused", Run: runDeviceRemove},
		},
	})
	app.Register(&cli.Command{
		Name:    "scs",
		Summary: "provision application servers (SCSs) in the store",
		Subs: []*cli.Command{
			{Name: "add", Args: "NAME --psk-identity ID --psk HEX|- " + storeArgs, Summary: "register an SCS", Run: runSCSAdd},
			{Name: "list", Args: "[--json] " + storeArgs, Summary: "list the SCSs and their grants (PSKs as fingerprints)", Run: runSCSList},
			{Name: "remove", Args: "NAME " + storeArgs, Summary: "unregister an SCS and its grants", Run: runSCSRemove},
		},
	})
	app.Register(&cli.Command{
		Name: "grant", Args: "--scs NAME --device ID[,ID...] --classes status,events,trigger,history " + storeArgs,
		Summary: "let an SCS use classes on devices (effective on its next request)", Run: runGrant,
	})
	app.Register(&cli.Command{
		Name: "revoke", Args: "--scs NAME --device ID[,ID...] [--classes CLASS,...] " + storeArgs,
		Summary: "take grants back (no --classes: all); effective on the SCS's next request", Run: runRevoke,
	})
	app.Register(&cli.Command{
		Name: "import", Args: "--config FILE " + storeArgs,
		Summary: "store the devices, SCSs and grants of a configuration file (same ids replaced)", Run: runImport,
	})
}

type storeFlags struct{ state, store *string }

func addStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		state: fs.String("state", "", "the collector's state directory (reaches a running serve through its admin socket; the default store is in it)"),
		store: fs.String("store", "", "the store, as serve's --store: a file or a postgres:// URL"),
	}
}

// open returns the registry: PostgreSQL directly; else the running
// serve's admin socket in --state; else the embedded store's file.
func (f storeFlags) open() (collector.Registry, func(), error) {
	st, done, err := f.openStore()
	if err != nil {
		return nil, nil, err
	}
	return st, done, nil
}

// openFor is open with a context bounding the command's work on the
// registry to d; done closes the registry and ends the context.
func (f storeFlags) openFor(d time.Duration) (collector.Registry, context.Context, func(), error) {
	r, closeReg, err := f.open()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	return r, ctx, func() { cancel(); closeReg() }, nil
}

// adminStore is what the commands use of a store, directly or through a
// running serve's admin socket.
type adminStore interface {
	collector.Registry
	collector.HistoryReader
}

func (f storeFlags) openStore() (adminStore, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if collector.IsPostgresURL(*f.store) {
		st, err := collector.OpenStore(ctx, *f.store, "")
		if err != nil {
			return nil, nil, cli.WithHint(err, "check the URL, that the database exists and that the user may create tables in it (docs/collector.md, Fleet)")
		}
		return st, func() { st.Close() }, nil
	}
	if *f.state == "" && *f.store == "" {
		return nil, nil, cli.Usagef("give --state DIR (the collector's) or --store PATH|postgres://...")
	}
	if *f.state != "" {
		if a, err := collector.DialAdmin(*f.state); err == nil {
			return a, func() { a.Close() }, nil
		}
	}
	st, err := collector.OpenStore(ctx, *f.store, *f.state)
	switch {
	case errors.Is(err, collector.ErrStoreLocked):
		return nil, nil, cli.WithHint(err, "a running serve holds the file: give its --state directory, so the command goes through its admin socket ("+collector.AdminSocket+")")
	case err != nil:
		return nil, nil, err
	}
	return st, func() { st.Close() }, nil
}

// registryErr adds a hint to what the registry refused.
func registryErr(err error) error {
	var dup *collector.DuplicateError
	var nf *collector.NotFoundError
	switch {
	case errors.As(err, &dup) && strings.Contains(dup.What, "psk identity"):
		return &cli.UsageError{Msg: err.Error(), Hint: "each device and each SCS needs a PSK identity of its own; 'mtccollector device list' (or scs list) shows who has it"}
	case errors.As(err, &dup):
		return &cli.UsageError{Msg: err.Error(), Hint: "pick another id, or remove the existing one first (mtccollector device remove ID / scs remove NAME)"}
	case errors.As(err, &nf) && nf.What == "scs":
		return &cli.UsageError{Msg: err.Error(), Hint: "'mtccollector scs list' shows the registered SCSs; add one with 'mtccollector scs add'"}
	case errors.As(err, &nf):
		return &cli.UsageError{Msg: err.Error(), Hint: "'mtccollector device list' shows the registered devices"}
	}
	return err
}

// readPSK takes a PSK in hex, or "-" to read it from stdin (so it stays
// out of the shell history and the process list).
func readPSK(env *cli.Env, v string) (string, error) {
	if v != "-" {
		return v, nil
	}
	line, err := bufio.NewReader(env.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

const hexHint = "a PSK is at least 16 bytes in hex, e.g. from 'openssl rand -hex 16'"

func runDeviceAdd(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "device add")
	sf := addStoreFlags(fs)
	from := fs.String("from", "", "a CSV file (header: id,psk_identity,psk,public_key[,key_pin,binding,heartbeat_timeout]) or a JSON array of such objects")
	var sp collector.DeviceSpec
	fs.StringVar(&sp.PublicKey, "public-key", "", "the device's Ed25519 public key: a PEM file from 'mtcagent key public', or 64 hex digits")
	fs.StringVar(&sp.PSKIdentity, "psk-identity", "", "the device's PSK identity (PSK mode)")
	fs.StringVar(&sp.PSK, "psk", "", "the PSK in hex, or - to read it from stdin")
	fs.StringVar(&sp.KeyPin, "key-pin", "", "SHA-256 of the device's TLS public key in hex (certificate mode; default: of the attestation key)")
	fs.StringVar(&sp.Binding, "binding", "", "expected binding: 'IMSI ICCID' pseudonyms in hex (default: the first one seen)")
	fs.StringVar(&sp.HeartbeatTimeout, "heartbeat-timeout", "", "overdue after this silence (default: the collector's heartbeat_timeout)")
	pos, err := cli.ParseInterleaved(fs, args, 1)
	if err != nil {
		return err
	}
	var ds []*collector.Device
	switch {
	case *from != "" && len(pos) > 0:
		return cli.Usagef("device add: give an ID or --from FILE, not both")
	case *from != "":
		f, err := os.Open(*from)
		if err != nil {
			return &cli.UsageError{Msg: err.Error()}
		}
		ds, err = collector.ParseDeviceFile(*from, f)
		f.Close()
		if err != nil {
			return &cli.UsageError{Msg: err.Error(), Hint: "format: see 'Provisioning' in docs/collector.md"}
		}
	case len(pos) == 1:
		sp.ID = pos[0]
		if sp.PSK, err = readPSK(env, sp.PSK); err != nil {
			return err
		}
		if k := sp.PublicKey; k != "" && !isHex(k) {
			b, err := os.ReadFile(k)
			if err != nil {
				return &cli.UsageError{Msg: fmt.Sprintf("--public-key: %v", err), Hint: "give the PEM file from 'mtcagent key public', or the key in 64 hex digits"}
			}
			sp.PublicKey = string(b)
		}
		d, err := sp.Device()
		if err != nil {
			hint := "see 'mtccollector device add --help'"
			if strings.Contains(err.Error(), "psk") {
				hint = hexHint
			}
			return &cli.UsageError{Msg: err.Error(), Hint: hint}
		}
		ds = []*collector.Device{d}
	default:
		return cli.Usagef("device add: want a device ID (or --from FILE)")
	}
	r, done, err := sf.open()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := r.AddDevices(ctx, ds, false); err != nil {
		return registryErr(err)
	}
	if len(ds) == 1 {
		fmt.Fprintf(env.Stdout, "device %s added\n", ds[0].ID)
	} else {
		fmt.Fprintf(env.Stdout, "%d devices added in %s\n", len(ds), time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) > 0
}

// deviceView is a device as list and show print it: no PSK, only its
// fingerprint.
type deviceView struct {
	ID               string   `json:"id"`
	PSKIdentity      string   `json:"psk_identity,omitempty"`
	PSKFingerprint   string   `json:"psk_fingerprint,omitempty"`
	KeyPin           string   `json:"key_pin,omitempty"`
	PublicKey        string   `json:"public_key"`
	Binding          string   `json:"binding,omitempty"`
	HeartbeatTimeout string   `json:"heartbeat_timeout,omitempty"`
	Grants           []string `json:"grants,omitempty"` // "scs:class,class"
}

func viewOf(d *collector.Device) deviceView {
	v := deviceView{ID: d.ID, PSKIdentity: d.PSKIdentity, PSKFingerprint: collector.Fingerprint(d.PSK),
		KeyPin: hex.EncodeToString(d.KeyPin), PublicKey: hex.EncodeToString(d.PublicKey)}
	if d.Binding != nil {
		v.Binding = hex.EncodeToString(d.Binding.IMSI) + " " + hex.EncodeToString(d.Binding.ICCID)
	}
	if d.HeartbeatTimeout > 0 {
		v.HeartbeatTimeout = d.HeartbeatTimeout.String()
	}
	return v
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runDeviceList(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "device list")
	sf := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "JSON for scripts")
	if _, err := cli.ParseInterleaved(fs, args, 0); err != nil {
		return err
	}
	r, ctx, done, err := sf.openFor(time.Minute)
	if err != nil {
		return err
	}
	defer done()
	ds, err := r.ListDevices(ctx)
	if err != nil {
		return err
	}
	views := make([]deviceView, 0, len(ds))
	for _, d := range ds {
		views = append(views, viewOf(d))
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, views)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPSK IDENTITY\tPSK\tKEY PIN\tHEARTBEAT TIMEOUT")
	for _, v := range views {
		pin := v.KeyPin
		if len(pin) > 16 {
			pin = pin[:16] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, dash(v.PSKIdentity), dash(v.PSKFingerprint), dash(pin), dash(v.HeartbeatTimeout))
	}
	return tw.Flush()
}

func runDeviceShow(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "device show")
	sf := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "JSON for scripts")
	pos, err := cli.ParseInterleaved(fs, args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("device show: want a device ID")
	}
	r, ctx, done, err := sf.openFor(time.Minute)
	if err != nil {
		return err
	}
	defer done()
	d, err := r.DeviceByID(ctx, pos[0])
	if err != nil {
		return err
	}
	if d == nil {
		return registryErr(&collector.NotFoundError{What: "device", Value: pos[0]})
	}
	v := viewOf(d)
	gs, err := r.Grants(ctx, "")
	if err != nil {
		return err
	}
	for _, g := range gs {
		if g.Device == d.ID {
			v.Grants = append(v.Grants, g.SCS+":"+strings.Join(g.Classes, ","))
		}
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, v)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	for _, kv := range [][2]string{{"id", v.ID}, {"psk identity", v.PSKIdentity}, {"psk", v.PSKFingerprint}, {"key pin", v.KeyPin},
		{"public key", v.PublicKey}, {"binding", v.Binding}, {"heartbeat timeout", v.HeartbeatTimeout}, {"grants", strings.Join(v.Grants, " ")}} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], dash(kv[1]))
	}
	return tw.Flush()
}

func runDeviceRemove(env *cli.Env, args []string) error {
	return removeOne(env, args, "device remove", "device", func(ctx context.Context, r collector.Registry, id string) error { return r.RemoveDevice(ctx, id) })
}

func runSCSRemove(env *cli.Env, args []string) error {
	return removeOne(env, args, "scs remove", "scs", func(ctx context.Context, r collector.Registry, id string) error { return r.RemoveSCS(ctx, id) })
}

func removeOne(env *cli.Env, args []string, cmd, what string, rm func(context.Context, collector.Registry, string) error) error {
	fs := app.NewFlags(env, cmd)
	sf := addStoreFlags(fs)
	pos, err := cli.ParseInterleaved(fs, args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("%s: want one %s", cmd, map[string]string{"device": "device ID", "scs": "SCS name"}[what])
	}
	r, ctx, done, err := sf.openFor(time.Minute)
	if err != nil {
		return err
	}
	defer done()
	if err := rm(ctx, r, pos[0]); err != nil {
		return registryErr(err)
	}
	fmt.Fprintf(env.Stdout, "%s %s removed\n", what, pos[0])
	return nil
}

func runSCSAdd(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "scs add")
	sf := addStoreFlags(fs)
	id := fs.String("psk-identity", "", "the SCS's PSK identity")
	psk := fs.String("psk", "", "the PSK in hex, or - to read it from stdin")
	pos, err := cli.ParseInterleaved(fs, args, 1)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return cli.Usagef("scs add: want an SCS name")
	}
	p, err := readPSK(env, *psk)
	if err != nil {
		return err
	}
	key, err := hex.DecodeString(p)
	if err != nil {
		return &cli.UsageError{Msg: "scs add: --psk: not hex", Hint: hexHint}
	}
	x := &collector.SCS{Name: pos[0], PSKIdentity: *id, PSK: key}
	if err := collector.CheckSCS(x); err != nil {
		return &cli.UsageError{Msg: err.Error(), Hint: hexHint}
	}
	r, ctx, done, err := sf.openFor(time.Minute)
	if err != nil {
		return err
	}
	defer done()
	if err := r.AddSCS(ctx, x, false); err != nil {
		return registryErr(err)
	}
	fmt.Fprintf(env.Stdout, "scs %s added (grant it devices with 'mtccollector grant')\n", x.Name)
	return nil
}

type scsView struct {
	Name           string              `json:"name"`
	PSKIdentity    string              `json:"psk_identity"`
	PSKFingerprint string              `json:"psk_fingerprint"`
	Grants         map[string][]string `json:"grants"` // device -> classes
}

func runSCSList(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "scs list")
	sf := addStoreFlags(fs)
	asJSON := fs.Bool("json", false, "JSON for scripts")
	if _, err := cli.ParseInterleaved(fs, args, 0); err != nil {
		return err
	}
	r, ctx, done, err := sf.openFor(time.Minute)
	if err != nil {
		return err
	}
	defer done()
	xs, err := r.ListSCS(ctx)
	if err != nil {
		return err
	}
	gs, err := r.Grants(ctx, "")
	if err != nil {
		return err
	}
	views := make([]scsView, 0, len(xs))
	for _, x := range xs {
		v := scsView{Name: x.Name, PSKIdentity: x.PSKIdentity, PSKFingerprint: collector.Fingerprint(x.PSK), Grants: map[string][]string{}}
		for _, g := range gs {
			if g.SCS == x.Name {
				v.Grants[g.Device] = g.Classes
			}
		}
		views = append(views, v)
	}
	if *asJSON {
		return cli.WriteJSON(env.Stdout, views)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPSK IDENTITY\tPSK\tGRANTS")
	for _, v := range views {
		var g []string
		for _, gr := range gs {
			if gr.SCS == v.Name {
				g = append(g, gr.Device+":"+strings.Join(gr.Classes, ","))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.PSKIdentity, v.PSKFingerprint, dash(strings.Join(g, " ")))
	}
	return tw.Flush()
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

func runGrant(env *cli.Env, args []string) error  { return grantOrRevoke(env, args, true) }
func runRevoke(env *cli.Env, args []string) error { return grantOrRevoke(env, args, false) }

func grantOrRevoke(env *cli.Env, args []string, grant bool) error {
	cmd := map[bool]string{true: "grant", false: "revoke"}[grant]
	fs := app.NewFlags(env, cmd)
	sf := addStoreFlags(fs)
	scs := fs.String("scs", "", "the SCS")
	devs := fs.String("device", "", "device IDs, comma-separated")
	cls := fs.String("classes", "", "classes, comma-separated: "+strings.Join(collector.Classes, ", "))
	if _, err := cli.ParseInterleaved(fs, args, 0); err != nil {
		return err
	}
	devices, classes := splitList(*devs), splitList(*cls)
	switch {
	case *scs == "" || len(devices) == 0:
		return cli.Usagef("%s: --scs and --device are required", cmd)
	case grant && len(classes) == 0:
		return &cli.UsageError{Msg: "grant: --classes is required", Hint: "classes: " + strings.Join(collector.Classes, ", ")}
	}
	if err := collector.CheckClasses(classes); err != nil {
		return &cli.UsageError{Msg: cmd + ": " + err.Error()}
	}
	r, ctx, done, err := sf.openFor(time.Minute)
	if err != nil {
		return err
	}
	defer done()
	if grant {
		for _, id := range devices {
			d, err := r.DeviceByID(ctx, id)
			if err != nil {
				return err
			}
			if d == nil {
				return registryErr(&collector.NotFoundError{What: "device", Value: id})
			}
		}
		err = r.Grant(ctx, *scs, devices, classes)
	} else {
		err = r.Revoke(ctx, *scs, devices, classes)
	}
	if err != nil {
		return registryErr(err)
	}
	what := strings.Join(classes, ",")
	if what == "" {
		what = "everything"
	}
	verb := map[bool]string{true: "granted", false: "revoked"}[grant]
	fmt.Fprintf(env.Stdout, "scs %s: %s %s on %s\n", *scs, verb, what, strings.Join(devices, ","))
	return nil
}

func runImport(env *cli.Env, args []string) error {
	fs := app.NewFlags(env, "import")
	sf := addStoreFlags(fs)
	cfgPath := fs.String("config", "", "the configuration file whose [device] and [scs] sections to store")
	if _, err := cli.ParseInterleaved(fs, args, 0); err != nil {
		return err
	}
	if *cfgPath == "" {
		return cli.Usagef("import: --config is required")
	}
	cfg, err := collector.LoadConfig(*cfgPath)
	if err != nil {
		return &cli.UsageError{Msg: err.Error(), Hint: "format: see docs/collector.md"}
	}
	r, done, err := sf.open()
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nd, ns, err := collector.ImportConfig(ctx, r, cfg)
	if err != nil {
		return registryErr(err)
	}
	fmt.Fprintf(env.Stdout, "imported %d device(s) and %d scs from %s\n", nd, ns, filepath.Base(*cfgPath))
	return nil
}
