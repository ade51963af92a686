// Package channel serves an rx.Hub over WebSockets (gorilla/websocket),
// speaking the protocol of docs/PROTOCOL.md: one socket per client,
// authenticated by a token in its hello frame, its Authorization header or a
// cookie, carrying any number of subscriptions, action calls, runtime state
// and system messages.
//
//	hub, _ := rx.New(db, rx.Config{})
//	auth, _ := channel.NewTokenAuth(db)
//	http.Handle("/rx", channel.NewServer(hub, channel.Options{Auth: auth}))
//
// Each socket has one reader, one writer and a bounded send queue. Deltas
// are encoded once per stream and shared by every socket that holds the
// stream; the frames queued for a socket go out in one write. A client
// that cannot keep up is closed with 4008 and resumes from its last
// version, losing nothing.
//
// # Budgets
//
// Every input has a bound in bytes and time, each an Options field whose
// zero value means the default:
//
//	ReadLimit            1 MiB     largest client frame; past it, close 1009
//	SendBudget           1 MiB     bytes waiting to be sent besides the largest
//	                               frame; past it, close 4008 (resume)
//	SendQueue            1024      frames waiting to be sent; past it, close 4008
//	MaxResult            256 KiB   one call's result; past it, too_large
//	MaxCalls             64        calls in progress; past it, overloaded
//	MaxSubscriptions     1000      subscriptions of a socket; past it, bad_request
//	MaxProtocolErrors    10        bad frames per ProtocolErrorWindow (1 min);
//	                               past it, close 1008
//	HelloTimeout         10 s      from the upgrade to hello, absolute; close 4001
//	MaxConnections       10,000    sockets of the server; HTTP 503 at upgrade
//	MaxConnectionsPerIP  100       sockets per ClientIP; HTTP 503 at upgrade
//	PingInterval         25 s      keepalive; a client silent for two is dropped
//	WriteTimeout         10 s      one write to a socket
//
// Error messages quote at most a short prefix of what the client sent.
// Behind a reverse proxy, set Options.ClientIP, or every client shares the
// proxy's address (and its MaxConnectionsPerIP).
//
// A socket lives as long as its credentials: TokenAuth stores tokens
// hashed, expires them after its TTL, rotates them (Rotate) and revokes
// them (Revoke, RevokeUser, RevokeOthers); the Server closes the sockets
// of a revoked or expired token with 4001, on every node of a cluster
// (revoke.go).
//
// # Monitoring
//
// Server.Stats returns the server's figures (sockets, data frames, writes,
// bytes sent, queued frames and bytes, errors sent by code), and
// Server.SetObserver receives the commit-to-send latency of every delta
// frame written (from rx.Event.Committed). Counters are atomic, with no
// lock per frame; the queues are added up when Stats is called. Package
// rxprom exports them to Prometheus.
package channel
