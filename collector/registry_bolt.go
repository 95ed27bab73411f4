package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The embedded store's registry buckets: records by id, and indexes from
// PSK identity (and key pin) to id.
var (
	bucketRegDevices = []byte("reg_devices")    // id -> deviceRecord (JSON)
	bucketRegDevPSK  = []byte("reg_device_psk") // psk identity -> id
	bucketRegDevPin  = []byte("reg_device_pin") // key pin + id -> id
	bucketRegSCS     = []byte("reg_scs")        // name -> scsRecord (JSON)
	bucketRegSCSPSK  = []byte("reg_scs_psk")    // psk identity -> name
	bucketRegGrants  = []byte("reg_grants")     // scs 0x00 device -> classes (JSON)
	registryBuckets  = [][]byte{bucketRegDevices, bucketRegDevPSK, bucketRegDevPin, bucketRegSCS, bucketRegSCSPSK, bucketRegGrants}
)

func pinKey(pin []byte, id string) []byte { return append(append([]byte(nil), pin...), id...) }

func grantKey(scs, device string) []byte { return []byte(scs + "\x00" + device) }

func boltDevice(tx *bolt.Tx, id string) (*Device, error) {
	v := tx.Bucket(bucketRegDevices).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	var r deviceRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("collector: store: registry: device %s: corrupt record: %w", id, err)
	}
	return r.device(), nil
}

func boltDeleteDeviceIndexes(tx *bolt.Tx, d *Device) error {
	if d.PSKIdentity != "" {
		if err := tx.Bucket(bucketRegDevPSK).Delete([]byte(d.PSKIdentity)); err != nil {
			return err
		}
	}
	if len(d.KeyPin) > 0 {
		return tx.Bucket(bucketRegDevPin).Delete(pinKey(d.KeyPin, d.ID))
	}
	return nil
}

// AddDevices writes in key order, bucket by bucket (records by id, then
// the PSK index, then the pin index): bbolt fills pages in order instead
// of splitting them at random, which makes a bulk add of 100,000 devices
// several times faster.
func (s *boltStore) AddDevices(_ context.Context, ds []*Device, replace bool) error {
	if err := checkUnique(ds); err != nil {
		return err
	}
	byID := slices.Clone(ds)
	slices.SortFunc(byID, func(a, b *Device) int { return strings.Compare(a.ID, b.ID) })
	type kv struct{ k, v []byte }
	var psks, pins []kv
	for _, d := range byID {
		if d.PSKIdentity != "" {
			psks = append(psks, kv{[]byte(d.PSKIdentity), []byte(d.ID)})
		}
		if len(d.KeyPin) > 0 {
			pins = append(pins, kv{pinKey(d.KeyPin, d.ID), []byte(d.ID)})
		}
	}
	slices.SortFunc(psks, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	slices.SortFunc(pins, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	defer s.gen.changed() // after the commit (or not): a session then reads its record again
	return s.db.Update(func(tx *bolt.Tx) error {
		recs, psk, pin := tx.Bucket(bucketRegDevices), tx.Bucket(bucketRegDevPSK), tx.Bucket(bucketRegDevPin)
		for _, d := range byID {
			old, err := boltDevice(tx, d.ID)
			if err != nil {
				return err
			}
			if old != nil {
				if !replace {
					return &DuplicateError{"device id", d.ID}
				}
				if err := boltDeleteDeviceIndexes(tx, old); err != nil {
					return err
				}
			}
			v, err := json.Marshal(recordOf(d))
			if err != nil {
				return err
			}
			if err := recs.Put([]byte(d.ID), v); err != nil {
				return err
			}
		}
		for _, e := range psks {
			if v := psk.Get(e.k); v != nil && !bytes.Equal(v, e.v) {
				return &DuplicateError{"device psk identity", string(e.k)}
			}
			if err := psk.Put(e.k, e.v); err != nil {
				return err
			}
		}
		for _, e := range pins {
			if err := pin.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltStore) RemoveDevice(_ context.Context, id string) error {
	defer s.gen.changed()
	return s.db.Update(func(tx *bolt.Tx) error {
		d, err := boltDevice(tx, id)
		if err != nil {
			return err
		}
		if d == nil {
			return &NotFoundError{"device", id}
		}
		if err := boltDeleteDeviceIndexes(tx, d); err != nil {
			return err
		}
		// Grants are keyed by SCS first: walk them (there are few SCSs).
		g := tx.Bucket(bucketRegGrants)
		var dead [][]byte
		suffix := []byte("\x00" + id)
		if err := g.ForEach(func(k, _ []byte) error {
			if bytes.HasSuffix(k, suffix) {
				dead = append(dead, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range dead {
			if err := g.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketRegDevices).Delete([]byte(id))
	})
}

func (s *boltStore) DeviceByID(_ context.Context, id string) (*Device, error) {
	var d *Device
	gen := s.gen.load() // before the read: see registryGen.changed
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		d, err = boltDevice(tx, id)
		return err
	})
	if d != nil {
		d.gen = gen
	}
	return d, err
}

func (s *boltStore) DeviceByPSK(_ context.Context, identity string) (*Device, error) {
	var d *Device
	gen := s.gen.load() // before the read: see registryGen.changed
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketRegDevPSK).Get([]byte(identity))
		if id == nil {
			return nil
		}
		var err error
		d, err = boltDevice(tx, string(id))
		return err
	})
	if d != nil {
		d.gen = gen
	}
	return d, err
}

func (s *boltStore) DeviceByPin(_ context.Context, pin []byte) (*Device, error) {
	var d *Device
	if len(pin) == 0 {
		return nil, nil
	}
	gen := s.gen.load() // before the read: see registryGen.changed
	err := s.db.View(func(tx *bolt.Tx) error {
		k, id := tx.Bucket(bucketRegDevPin).Cursor().Seek(pin)
		if k == nil || !bytes.HasPrefix(k, pin) {
			return nil
		}
		var err error
		d, err = boltDevice(tx, string(id))
		return err
	})
	if d != nil {
		d.gen = gen
	}
	return d, err
}

func (s *boltStore) ListDevices(context.Context) ([]*Device, error) {
	var out []*Device
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRegDevices).ForEach(func(k, v []byte) error {
			var r deviceRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("collector: store: registry: device %s: corrupt record: %w", k, err)
			}
			out = append(out, r.device())
			return nil
		})
	})
	return out, err
}

func (s *boltStore) CountDevices(context.Context) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketRegDevices).Stats().KeyN
		return nil
	})
	return n, err
}

func boltSCS(tx *bolt.Tx, name string) (*SCS, error) {
	v := tx.Bucket(bucketRegSCS).Get([]byte(name))
	if v == nil {
		return nil, nil
	}
	var r scsRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("collector: store: registry: scs %s: corrupt record: %w", name, err)
	}
	return &SCS{Name: r.Name, PSKIdentity: r.PSKIdentity, PSK: r.PSK}, nil
}

func (s *boltStore) AddSCS(_ context.Context, x *SCS, replace bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		old, err := boltSCS(tx, x.Name)
		if err != nil {
			return err
		}
		psk := tx.Bucket(bucketRegSCSPSK)
		if old != nil {
			if !replace {
				return &DuplicateError{"scs name", x.Name}
			}
			if err := psk.Delete([]byte(old.PSKIdentity)); err != nil {
				return err
			}
		}
		if v := psk.Get([]byte(x.PSKIdentity)); v != nil && string(v) != x.Name {
			return &DuplicateError{"scs psk identity", x.PSKIdentity}
		}
		if err := psk.Put([]byte(x.PSKIdentity), []byte(x.Name)); err != nil {
			return err
		}
		v, err := json.Marshal(scsRecord{Name: x.Name, PSKIdentity: x.PSKIdentity, PSK: x.PSK})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRegSCS).Put([]byte(x.Name), v)
	})
}

func (s *boltStore) RemoveSCS(_ context.Context, name string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		old, err := boltSCS(tx, name)
		if err != nil {
			return err
		}
		if old == nil {
			return &NotFoundError{"scs", name}
		}
		if err := tx.Bucket(bucketRegSCSPSK).Delete([]byte(old.PSKIdentity)); err != nil {
			return err
		}
		g := tx.Bucket(bucketRegGrants)
		prefix := []byte(name + "\x00")
		c := g.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := g.Delete(k); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketRegSCS).Delete([]byte(name))
	})
}

func (s *boltStore) SCSByName(_ context.Context, name string) (*SCS, error) {
	var x *SCS
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		x, err = boltSCS(tx, name)
		return err
	})
	return x, err
}

func (s *boltStore) SCSByPSK(_ context.Context, identity string) (*SCS, error) {
	var x *SCS
	err := s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketRegSCSPSK).Get([]byte(identity))
		if name == nil {
			return nil
		}
		var err error
		x, err = boltSCS(tx, string(name))
		return err
	})
	return x, err
}

func (s *boltStore) ListSCS(context.Context) ([]*SCS, error) {
	var out []*SCS
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRegSCS).ForEach(func(k, _ []byte) error {
			x, err := boltSCS(tx, string(k))
			if x != nil {
				out = append(out, x)
			}
			return err
		})
	})
	return out, err
}

func (s *boltStore) changeGrants(scs string, devices []string, fn func(have []string) []string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if x, err := boltSCS(tx, scs); err != nil || x == nil {
			if err == nil {
				err = &NotFoundError{"scs", scs}
			}
			return err
		}
		g := tx.Bucket(bucketRegGrants)
		for _, d := range devices {
			var have []string
			if v := g.Get(grantKey(scs, d)); v != nil {
				if err := json.Unmarshal(v, &have); err != nil {
					return fmt.Errorf("collector: store: registry: grant %s/%s: corrupt record: %w", scs, d, err)
				}
			}
			now := fn(have)
			if len(now) == 0 {
				if err := g.Delete(grantKey(scs, d)); err != nil {
					return err
				}
				continue
			}
			v, _ := json.Marshal(now)
			if err := g.Put(grantKey(scs, d), v); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltStore) Grant(_ context.Context, scs string, devices, classes []string) error {
	return s.changeGrants(scs, devices, func(have []string) []string {
		for _, c := range classes {
			if !slices.Contains(have, c) {
				have = append(have, c)
			}
		}
		slices.Sort(have)
		return have
	})
}

func (s *boltStore) Revoke(_ context.Context, scs string, devices, classes []string) error {
	return s.changeGrants(scs, devices, func(have []string) []string {
		if len(classes) == 0 {
			return nil
		}
		return slices.DeleteFunc(have, func(c string) bool { return slices.Contains(classes, c) })
	})
}

func (s *boltStore) Granted(_ context.Context, scs, device, class string) (bool, error) {
	ok := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRegGrants).Get(grantKey(scs, device))
		if v == nil {
			return nil
		}
		var have []string
		if err := json.Unmarshal(v, &have); err != nil {
			return fmt.Errorf("collector: store: registry: grant %s/%s: corrupt record: %w", scs, device, err)
		}
		ok = slices.Contains(have, class)
		return nil
	})
	return ok, err
}

func (s *boltStore) Grants(_ context.Context, scs string) ([]Grant, error) {
	var out []Grant
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRegGrants).ForEach(func(k, v []byte) error {
			name, dev, _ := bytes.Cut(k, []byte{0})
			if scs != "" && string(name) != scs {
				return nil
			}
			g := Grant{SCS: string(name), Device: string(dev)}
			if err := json.Unmarshal(v, &g.Classes); err != nil {
				return fmt.Errorf("collector: store: registry: grant %s: corrupt record: %w", k, err)
			}
			out = append(out, g)
			return nil
		})
	})
	return out, err
}
