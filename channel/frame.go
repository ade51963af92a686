package channel

import (
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// A frame is a complete WebSocket text message as it goes on the wire:
// header and payload, unmasked and uncompressed, which is what a server
// sends on every connection (the upgrader does not negotiate compression).
// So a delta or system message is framed once and the same bytes are
// written to every socket.
//
// gorilla/websocket's PreparedMessage did this before, but it builds each
// frame through a throwaway connection with a 4 KiB write buffer, and the
// connections' compression level differs from the key NewPreparedMessage
// prepares, so every message was framed twice: a third of the server's
// allocations at C=100 paced 200 writes/s, and the garbage collections
// they caused were most of the tail latency (issue 19, docs/BENCHMARKS.md).
//
// Frames go to the connection under gorilla's Conn (the session's
// batchConn) on the session's writer goroutine, the only goroutine that
// writes data frames, so they never land inside a fragmented message;
// control frames written meanwhile by other goroutines are single writes
// to the same batchConn, whose lock keeps both whole.

// textFrame frames payload as one final text frame.
func textFrame(payload []byte) []byte {
	var h [maxHeader]byte
	hdr := frameHeader(&h, len(payload))
	return append(append(make([]byte, 0, len(hdr)+len(payload)), hdr...), payload...)
}

// maxHeader is the longest header of a server's frame.
const maxHeader = 10

// frameHeader writes the header of a final text frame of n payload bytes
// at the end of h and returns it.
func frameHeader(h *[maxHeader]byte, n int) []byte {
	var f []byte
	switch {
	case n < 126:
		f = h[maxHeader-2:]
		f[1] = byte(n)
	case n <= 0xFFFF:
		f = h[maxHeader-4:]
		f[1] = 126
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f = h[:]
		f[1] = 127
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	f[0] = 0x81 // FIN, text
	return f
}

// framePayload returns the payload of a frame made by textFrame.
func framePayload(f []byte) []byte {
	switch f[1] & 0x7f {
	case 126:
		return f[4:]
	case 127:
		return f[10:]
	}
	return f[2:]
}

// Joined frames. A client that announces batch in hello accepts several
// server messages in one text frame, separated by "\n" (JSON has no raw
// newline, so the split is exact). When a socket's writer finds several
// ready messages queued (deltas, system messages: not snapshots, which
// are encoded per batch), it sends their payloads as one frame: the client
// reads one frame (for a browser, one message event) instead of several.
// A frame joins at most maxJoined payload bytes; a larger message goes
// alone, as before.

// maxJoined bounds a joined frame's payload.
const maxJoined = 64 << 10

// joinable returns how many of the items at the front of items can be
// joined into one frame (1 when the first cannot be joined with any).
func joinable(items []outItem) int {
	size := 0
	for i, it := range items {
		p := itemPayload(it)
		if p == nil || (i > 0 && size+1+len(p) > maxJoined) {
			return max(i, 1)
		}
		size += len(p) + 1
	}
	return len(items)
}

// itemPayload is the message of a ready item; nil for a snapshot.
func itemPayload(it outItem) []byte {
	switch {
	case it.frame != nil:
		return framePayload(it.frame)
	case it.data != nil:
		return it.data
	}
	return nil
}

// joinPool recycles the buffers joined frames are built in.
var joinPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// writeJoined writes the messages of items, which joinable accepted, as
// one frame.
func (s *session) writeJoined(items []outItem) error {
	now := time.Now()
	bp := joinPool.Get().(*[]byte)
	b := append((*bp)[:0], make([]byte, maxHeader)...) // room for the header
	for i, it := range items {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, itemPayload(it)...)
		s.srv.sentFrame(it.size, it.at, now)
	}
	var h [maxHeader]byte
	hdr := frameHeader(&h, len(b)-maxHeader)
	start := maxHeader - len(hdr)
	copy(b[start:], hdr)
	// One Write: a control frame from another goroutine cannot land
	// inside it (batchConn copies what it holds).
	err := s.writeFrame(b[start:], now.Add(s.srv.opts.WriteTimeout))
	*bp = b[:0]
	joinPool.Put(bp)
	return err
}

// writeFrame writes a frame made by textFrame to the socket, with the
// write deadline gorilla's own writes use.
func (s *session) writeFrame(f []byte, deadline time.Time) error {
	if s.ended.Load() {
		return errSessionEnded
	}
	nc := s.conn.NetConn()
	if err := nc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := nc.Write(f)
	return err
}

// errSessionEnded is the error of a frame written after the session ended.
var errSessionEnded = errors.New("channel: session ended")
