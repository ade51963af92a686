package channel

import (
	"encoding/binary"
	"errors"
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
	n := len(payload)
	var f []byte
	switch {
	case n < 126:
		f = make([]byte, 2, 2+n)
		f[1] = byte(n)
	case n <= 0xFFFF:
		f = make([]byte, 4, 4+n)
		f[1] = 126
		binary.BigEndian.PutUint16(f[2:], uint16(n))
	default:
		f = make([]byte, 10, 10+n)
		f[1] = 127
		binary.BigEndian.PutUint64(f[2:], uint64(n))
	}
	f[0] = 0x81 // FIN, text
	return append(f, payload...)
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
