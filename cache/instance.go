package cache

import (
	"bytes"
	"encoding/json"
)

// Stream names the state of one channel for one anchor row.
type Stream struct {
	Channel string // registered channel name
	Anchor  string // anchor primary key, in its canonical string form
}

// String returns "channel/anchor".
func (s Stream) String() string { return s.Channel + "/" + s.Anchor }

// Key identifies an instance inside a stream. Owner is empty for rows every
// subscriber may see and holds the owning user's id for per-user rows and for
// per-user overlays of shared rows.
type Key struct {
	Type  string
	ID    string
	Owner string
}

// Instance is one flat row of a stream: its identity, its JSON-encoded fields
// (relations appear as ids), the version at which it last changed, and
// whether it is a tombstone.
//
// Instances returned by a Store are shared and must not be modified.
type Instance struct {
	Type    string
	ID      string
	Owner   string
	Fields  map[string]json.RawMessage // nil on tombstones
	Deleted bool
	Version uint64
}

// Key returns the instance's identity.
func (in *Instance) Key() Key { return Key{in.Type, in.ID, in.Owner} }

// Merge returns the delta of applying change to the stored instance old (nil
// when there is none) and the merged instance to store. Fields of change
// replace those of old; fields change leaves out keep their stored value. A
// change that alters nothing returns a nil delta. Both results carry version.
func Merge(old, change *Instance, version uint64) (delta, merged *Instance) {
	k := change.Key()
	if change.Deleted {
		if old == nil || old.Deleted {
			return nil, nil
		}
		t := &Instance{Type: k.Type, ID: k.ID, Owner: k.Owner, Deleted: true, Version: version}
		return t, t
	}
	if old == nil || old.Deleted {
		fields := make(map[string]json.RawMessage, len(change.Fields))
		for f, v := range change.Fields {
			fields[f] = v
		}
		n := &Instance{Type: k.Type, ID: k.ID, Owner: k.Owner, Fields: fields, Version: version}
		return n, n
	}
	var changed map[string]json.RawMessage
	for f, v := range change.Fields {
		if ov, ok := old.Fields[f]; ok && bytes.Equal(ov, v) {
			continue
		}
		if changed == nil {
			changed = make(map[string]json.RawMessage)
		}
		changed[f] = v
	}
	if changed == nil {
		return nil, nil
	}
	fields := make(map[string]json.RawMessage, len(old.Fields)+len(changed))
	for f, v := range old.Fields {
		fields[f] = v
	}
	for f, v := range changed {
		fields[f] = v
	}
	return &Instance{Type: k.Type, ID: k.ID, Owner: k.Owner, Fields: changed, Version: version},
		&Instance{Type: k.Type, ID: k.ID, Owner: k.Owner, Fields: fields, Version: version}
}
