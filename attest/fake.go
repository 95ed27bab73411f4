package attest

import "sync/atomic"

// MemSequence is an in-memory Sequencer for tests and previews: it starts
// at 1 and forgets everything at exit. Never use it for real tokens.
type MemSequence struct{ n atomic.Uint64 }

// Next returns 1, 2, 3, ...
func (m *MemSequence) Next() (uint64, error) { return m.n.Add(1), nil }
