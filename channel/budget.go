package channel

import (
	"fmt"
	"net"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// Budgets (docs/DESIGN.md 0a): what one socket may make the server hold,
// and for how long. The send budget is in session.enqueue, the hello
// deadline in session.serve; here are the helpers they use, the
// connection caps and the bad-frame rate.

// admit counts a socket from ip against Options.MaxConnections and
// Options.MaxConnectionsPerIP, or reports that one of them is reached.
func (s *Server) admit(ip string) bool {
	o := &s.opts
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.MaxConnections > 0 && s.conns >= o.MaxConnections {
		return false
	}
	if o.MaxConnectionsPerIP > 0 && s.perIP[ip] >= o.MaxConnectionsPerIP {
		return false
	}
	s.conns++
	s.perIP[ip]++
	return true
}

// release undoes admit.
func (s *Server) release(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// remoteHost is the default Options.ClientIP: the host of RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// maxMessage is the longest error message sent, in bytes once encoded in
// JSON: messages may quote what the client sent (an unknown type, channel
// or field name), and a client must not get back more than a short prefix
// of its input (escaping makes one byte of input up to six of output).
const maxMessage = 256

// maxQuote is the longest piece of client input an error message quotes.
const maxQuote = 32

// maxIDLength is the longest subscription or call id accepted, in bytes of
// its JSON text: ids are echoed with every answer.
const maxIDLength = 128

// clip shortens s so that its JSON encoding (without the quotes) takes at
// most n bytes, cutting at a rune boundary and marking the cut with "...".
func clip(s string, n int) string {
	if len(s) <= n/6 || jsonLen(s) <= n {
		return s
	}
	size := 0
	for i, r := range s {
		switch {
		case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
			size += 2
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029' || r == utf8.RuneError:
			size += 6
		default:
			size += utf8.RuneLen(r)
		}
		if size > n-3 {
			return s[:i] + "..."
		}
	}
	return s
}

// jsonLen is the length of s encoded as a JSON string, without quotes.
func jsonLen(s string) int { return len(appendString(nil, s)) - 2 }

// quote is %q of a short prefix of client input, for error messages.
func quote(s string) string { return fmt.Sprintf("%q", clip(s, maxQuote)) }

// instancesSize estimates the bytes of insts encoded in a frame (a little
// over: escaping aside, it counts every quote and separator).
func instancesSize(insts []*cache.Instance) int {
	n := 2
	for _, in := range insts {
		n += 48 + len(in.Type) + len(in.ID) + len(in.Owner)
		for k, v := range in.Fields {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// errBucket limits the rate of bad frames: a token bucket of max tokens
// refilled evenly over window. Used by the read loop only.
type errBucket struct {
	tokens float64
	max    float64
	rate   float64 // tokens per second
	last   time.Time
}

func newErrBucket(max int, window time.Duration) errBucket {
	return errBucket{tokens: float64(max), max: float64(max), rate: float64(max) / window.Seconds(), last: time.Now()}
}

// take spends a token for one bad frame and reports whether the socket may
// go on: false once max bad frames came faster than the refill.
func (b *errBucket) take(now time.Time) bool {
	b.tokens = min(b.max, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens--
	return b.tokens >= 1
}

// sent accounts for a frame of size bytes written (or dropped); rest are
// the frames of the writer's batch behind it (qmu held). When the largest
// frame leaves, the next largest is found among the rest and the queue (at
// most SendQueue frames).
func (s *session) sent(size int, rest []outItem) {
	s.bytes -= size
	if s.bytes <= 0 {
		s.bytes, s.big = 0, 0
		return
	}
	if size < s.big {
		return
	}
	s.big = 0
	for _, x := range rest {
		s.big = max(s.big, x.size)
	}
	for _, x := range s.queue {
		s.big = max(s.big, x.size)
	}
}

// delta is a stream's delta frame, framed once for every socket.
type delta struct {
	frame []byte // a textFrame
	size  int    // bytes of the message
}

// deltaMessage returns the prepared delta frame of ev, encoding it on
// first use.
func deltaMessage(channel string, ev *rx.Event) *delta {
	d, _ := ev.Memo(func(ev *rx.Event) any {
		msg := deltaFrame(channel, ev.Anchor, ev.Version, ev.From, ev.Instances)
		return &delta{textFrame(msg), len(msg)}
	}).(*delta)
	return d
}
