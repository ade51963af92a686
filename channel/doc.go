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
// stream; a client that cannot keep up is closed with 4008 and resumes from
// its last version, losing nothing.
//
// A socket lives as long as its credentials: TokenAuth stores tokens
// hashed, expires them after its TTL, rotates them (Rotate) and revokes
// them (Revoke, RevokeUser, RevokeOthers); the Server closes the sockets
// of a revoked or expired token with 4001, on every node of a cluster
// (revoke.go).
package channel
