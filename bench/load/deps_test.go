package load

import (
	"os/exec"
	"strings"
	"testing"
)

// The load tool is a program: it must not link package testing (through
// rxtest or mongotest), whose flags and init it would carry (issue 17, item
// 10).
func TestRxloadDoesNotLinkTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/rxgorm/rxgorm/bench/cmd/rxload").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list listed %d packages: %s", len(deps), out)
	}
	for _, p := range deps {
		switch p {
		case "testing", "github.com/rxgorm/rxgorm/rx/rxtest", "github.com/rxgorm/rxgorm/cache/mongotest":
			t.Errorf("rxload links %s", p)
		}
	}
}
