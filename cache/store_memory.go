package cache

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryStore is the default Store: streams live in this process's memory.
// Its zero value is not usable; call NewMemory.
type MemoryStore struct {
	mu      sync.RWMutex
	streams map[Stream]*memStream // guarded by mu
	// high is the highest version this store has handed out, kept across
	// Expire so that a re-filled stream never reuses a version.
	high          atomic.Uint64
	maxTombstones int
}

var _ Store = (*MemoryStore)(nil)

type memStream struct {
	mu         sync.RWMutex
	instances  map[Key]*Instance // live instances and tombstones
	version    uint64
	floor      uint64 // Since answers only for versions >= floor
	tombstones int
}

// MemoryOptions configures NewMemory. The zero value works.
type MemoryOptions struct {
	// MaxTombstones bounds the tombstones kept per stream for resume. Zero
	// means 10,000.
	MaxTombstones int
}

// NewMemory returns an empty in-memory store.
func NewMemory(opts MemoryOptions) *MemoryStore {
	if opts.MaxTombstones <= 0 {
		opts.MaxTombstones = 10000
	}
	return &MemoryStore{streams: make(map[Stream]*memStream), maxTombstones: opts.MaxTombstones}
}

func (m *MemoryStore) stream(s Stream) *memStream {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.streams[s]
}

// raise records v as handed out.
func (m *MemoryStore) raise(v uint64) {
	for {
		h := m.high.Load()
		if v <= h || m.high.CompareAndSwap(h, v) {
			return
		}
	}
}

// startVersion returns the first version of a freshly filled stream: time
// based, so that it exceeds every version handed out before, also by an
// earlier process.
func startVersion(prev uint64) uint64 {
	v := uint64(time.Now().UnixMicro())
	if v <= prev {
		v = prev + 1
	}
	return v
}

// Fill implements Store.
func (m *MemoryStore) Fill(ctx context.Context, s Stream, instances []*Instance) (uint64, error) {
	ms := &memStream{instances: make(map[Key]*Instance, len(instances))}
	m.mu.Lock()
	defer m.mu.Unlock()
	ms.version = startVersion(m.high.Load())
	m.raise(ms.version)
	ms.floor = ms.version
	for _, in := range instances {
		if in.Deleted {
			continue
		}
		c := *in
		c.Fields = maps.Clone(in.Fields) // not aliased to the caller's map
		c.Version = ms.version
		ms.instances[in.Key()] = &c
	}
	m.streams[s] = ms
	return ms.version, nil
}

// Apply implements Store.
func (m *MemoryStore) Apply(ctx context.Context, writes []Write) ([]Delta, error) {
	out := make([]Delta, len(writes))
	for i, w := range writes {
		out[i].Stream = w.Stream
		ms := m.stream(w.Stream)
		if ms == nil {
			out[i].Cold = true
			continue
		}
		ms.mu.Lock()
		next := ms.version + 1
		for _, ch := range w.Changes {
			k := ch.Key()
			old := ms.instances[k]
			delta, merged := Merge(old, ch, next)
			if delta == nil {
				continue
			}
			if merged.Deleted {
				ms.tombstones++
			} else if old != nil && old.Deleted {
				ms.tombstones--
			}
			ms.instances[k] = merged
			out[i].Instances = append(out[i].Instances, delta)
		}
		if len(out[i].Instances) > 0 {
			ms.version = next
			m.raise(next)
			if ms.tombstones > m.maxTombstones {
				ms.pruneLocked(ms.tombstones - m.maxTombstones/2)
			}
		}
		out[i].Version = ms.version
		ms.mu.Unlock()
	}
	return out, nil
}

// pruneLocked drops the n oldest tombstones and raises the resume floor.
func (ms *memStream) pruneLocked(n int) {
	var versions []uint64
	for _, in := range ms.instances {
		if in.Deleted {
			versions = append(versions, in.Version)
		}
	}
	if n > len(versions) {
		n = len(versions)
	}
	// Select the n-th smallest version as the cut.
	cut := nthSmallest(versions, n-1)
	for k, in := range ms.instances {
		if in.Deleted && in.Version <= cut {
			delete(ms.instances, k)
			ms.tombstones--
		}
	}
	if cut+1 > ms.floor {
		ms.floor = cut + 1
	}
}

func nthSmallest(vs []uint64, n int) uint64 {
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	return sorted[n]
}

// Snapshot implements Store.
func (m *MemoryStore) Snapshot(ctx context.Context, s Stream) (Snapshot, error) {
	ms := m.stream(s)
	if ms == nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", s, ErrCold)
	}
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	snap := Snapshot{Version: ms.version, Instances: make([]*Instance, 0, len(ms.instances)-ms.tombstones)}
	for _, in := range ms.instances {
		if !in.Deleted {
			snap.Instances = append(snap.Instances, in)
		}
	}
	return snap, nil
}

// Since implements Store.
func (m *MemoryStore) Since(ctx context.Context, s Stream, version uint64) ([]*Instance, uint64, bool, error) {
	ms := m.stream(s)
	if ms == nil {
		return nil, 0, false, nil
	}
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	if version < ms.floor || version > ms.version {
		return nil, ms.version, false, nil
	}
	var out []*Instance
	for _, in := range ms.instances {
		if in.Version > version {
			out = append(out, in)
		}
	}
	return out, ms.version, true, nil
}

// Expire implements Store.
func (m *MemoryStore) Expire(ctx context.Context, s Stream) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.streams, s)
	return nil
}
