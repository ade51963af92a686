package channel

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/rxgorm/rxgorm/cache"
)

// BenchmarkAppendInstances10k encodes a 10,000-instance snapshot batch
// (docs/BENCHMARKS.md).
func BenchmarkAppendInstances10k(b *testing.B) {
	insts := make([]*cache.Instance, 10000)
	for i := range insts {
		insts[i] = &cache.Instance{Type: "Card", ID: fmt.Sprint(i), Fields: map[string]json.RawMessage{
			"id": json.RawMessage(fmt.Sprint(i)), "listId": json.RawMessage("3"), "title": json.RawMessage(`"card title"`), "n": json.RawMessage("0"), "sent": json.RawMessage("0"), "done": json.RawMessage("false")}}
	}
	b.ReportAllocs()
	var out []byte
	for i := 0; i < b.N; i++ {
		out = appendInstances(out[:0], insts)
	}
}
