package loadctl

import (
	"context"
	"testing"
	"time"
)

// TestPaceCatchesUp: after a stalled call, Pace makes the late calls at
// once until it is back on schedule, so that a stall does not shift every
// later call (the old behaviour left the last call the stall's 60 ms late).
func TestPaceCatchesUp(t *testing.T) {
	const count, rate = 30, 200 // one call every 5 ms, 145 ms in all
	res := Pace(context.Background(), count, rate, func(i int, sent int64) (int64, error) {
		if i == 2 {
			time.Sleep(60 * time.Millisecond)
		}
		return 0, nil
	})
	if res.Error != "" || len(res.Sent) != count || len(res.Due) != count {
		t.Fatalf("error %q, %d sent, %d due", res.Error, len(res.Sent), len(res.Due))
	}
	for i := range res.Sent {
		if res.Sent[i] < res.Due[i] {
			t.Fatalf("call %d made %v before it was due", i, time.Duration(res.Due[i]-res.Sent[i]))
		}
	}
	if late := time.Duration(res.Sent[count-1] - res.Due[count-1]); late > 30*time.Millisecond {
		t.Fatalf("the last call was %v late: the schedule did not catch up after the stall", late)
	}
	if burst := time.Duration(res.Sent[4] - res.Sent[3]); burst > 4*time.Millisecond {
		t.Fatalf("calls 3 and 4, both late, were %v apart", burst)
	}
}
