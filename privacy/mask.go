package privacy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"time"

	"github.com/mtcagent/mtcagent/internal/fsutil"
	"github.com/mtcagent/mtcagent/privacy/ident"
)

// SecretFile is the name of the per-device masking secret in the state
// directory.
const SecretFile = "privacy.secret"

// SecretSize is the length of the device secret in bytes.
const SecretSize = 32

// Masking parameters, in units of the recipient's grid size g: a fixed
// offset uniform in a disc of radius baseRadius·g, plus a drifting part
// uniform in a disc of radius driftRadius·g at each keyframe, keyframes
// driftPeriod apart with a per-device phase, evaluated once per
// driftWindow (so reports within a window are identical for the same
// position). The drift moves at most about 0.1·g per window.
const (
	baseRadius  = 0.75
	driftRadius = 0.5
	driftWindow = 6 * time.Hour
	driftPeriod = 4 * 24 * time.Hour
)

const metersPerDegree = 111320.0

// Masker turns a true position into the region a recipient may see. It
// is deterministic in (secret, position, time window, grid size): no fresh
// randomness per report, so repeating a report teaches nothing new and
// averaging converges to a point offset from the truth by a secret amount.
type Masker struct {
	key      []byte
	baseE    float64 // fixed offset, in grid units
	baseN    float64
	phaseWin int64 // per-device phase, in windows
}

// NewMasker derives a masker from the device secret (SecretSize bytes).
func NewMasker(secret ident.Key) (*Masker, error) {
	if secret.Len() != SecretSize {
		return nil, fmt.Errorf("privacy: masker: %w: device secret must be %d bytes, have %d", ErrNoSecret, SecretSize, secret.Len())
	}
	h := hmac.New(sha256.New, secret.Reveal())
	h.Write([]byte("mtcagent location mask v1"))
	m := &Masker{key: h.Sum(nil)}
	m.baseE, m.baseN = m.disc("base", 0, baseRadius)
	win := int64(driftPeriod / driftWindow)
	m.phaseWin = int64(m.prf("phase", 0) % uint64(win))
	return m, nil
}

func (m *Masker) prf(label string, i int64) uint64 {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(label))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h.Write(b[:])
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// disc returns a point uniform in a disc of radius r from the PRF.
func (m *Masker) disc(label string, i int64, r float64) (e, n float64) {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte(label))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	h.Write(b[:])
	sum := h.Sum(nil)
	u1 := float64(binary.BigEndian.Uint64(sum[0:8])>>11) / (1 << 53)
	u2 := float64(binary.BigEndian.Uint64(sum[8:16])>>11) / (1 << 53)
	rad := r * math.Sqrt(u1)
	th := 2 * math.Pi * u2
	return rad * math.Cos(th), rad * math.Sin(th)
}

// Offset is the secret offset at time t, in grid units (multiply by the
// grid size for meters): east and north components.
func (m *Masker) Offset(t time.Time) (east, north float64) {
	win := floorDiv(t.Unix(), int64(driftWindow/time.Second)) + m.phaseWin
	per := int64(driftPeriod / driftWindow)
	k := floorDiv(win, per)
	frac := float64(win-k*per) / float64(per)
	s := (1 - math.Cos(math.Pi*frac)) / 2
	e0, n0 := m.disc("drift", k, driftRadius)
	e1, n1 := m.disc("drift", k+1, driftRadius)
	return m.baseE + (1-s)*e0 + s*e1, m.baseN + (1-s)*n0 + s*n1
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// Region returns the centre of the grid cell (side gridM meters) that
// holds the true position moved by the secret offset at time t. Latitude
// rows are gridM high; each row is cut into cells gridM wide at its centre
// latitude, so the grid is the same for every device.
func (m *Masker) Region(loc Location, gridM int, t time.Time) (lat, lon float64) {
	g := float64(gridM)
	oe, on := m.Offset(t)
	lat0 := clampLat(loc.Lat)
	shLat := clampLat(lat0 + on*g/metersPerDegree)
	shLon := loc.Lon + oe*g/(metersPerDegree*cosLat(lat0))
	return snap(shLat, shLon, gridM)
}

// snap returns the centre of the grid cell holding (lat, lon).
func snap(lat, lon float64, gridM int) (float64, float64) {
	g := float64(gridM)
	latStep := g / metersPerDegree
	row := math.Floor(clampLat(lat) / latStep)
	cLat := clampLat((row + 0.5) * latStep)
	lonStep := g / (metersPerDegree * cosLat(cLat))
	if lonStep > 360 {
		lonStep = 360
	}
	col := math.Floor((wrapLon(lon) + 180) / lonStep)
	cLon := wrapLon(-180 + (col+0.5)*lonStep)
	return round6(cLat), round6(cLon)
}

func cosLat(lat float64) float64 { return math.Max(math.Cos(lat*math.Pi/180), 0.01) }

func clampLat(l float64) float64 { return math.Max(-89.9999, math.Min(89.9999, l)) }

func wrapLon(l float64) float64 {
	l = math.Mod(l+180, 360)
	if l < 0 {
		l += 360
	}
	return l - 180
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// LoadSecret reads the device secret from dir/privacy.secret, creating it
// (SecretSize random bytes, mode 0600) when it does not exist. A secret
// another user owns, or that group or others can access, or of the wrong
// size, is refused.
func LoadSecret(dir string) (ident.Key, error) {
	path := filepath.Join(dir, SecretFile)
	b, err := readSecret(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createSecret(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return ident.Key{}, err
		}
		b, err = readSecret(path)
	}
	if err != nil {
		return ident.Key{}, err
	}
	k := ident.NewKey(b)
	clear(b)
	return k, nil
}

// readSecret reads the secret through fsutil's one check of private files
// (owner, mode 0600 or stricter) and checks its size.
func readSecret(path string) ([]byte, error) {
	b, err := fsutil.ReadPrivateFile(path, 1<<10)
	if err != nil {
		if errors.Is(err, fsutil.ErrUnprotected) || errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("privacy: read secret: %w", err)
	}
	if len(b) != SecretSize {
		clear(b)
		return nil, fmt.Errorf("privacy: read secret %s: %d bytes, want %d", path, len(b), SecretSize)
	}
	return b, nil
}

func createSecret(path string) error {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("privacy: create secret: %w", err)
	}
	defer clear(b)
	// Another process may create the secret first; keep theirs.
	err := fsutil.CreateExclusive(path, b, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("privacy: create secret: %w", err)
	}
	return nil
}
