package rx

// Groups, group events and system broadcasts: what Hub.Publish,
// Hub.Broadcast and Hub.OnBroadcast do, and how an event reaches the
// consumers of the subscriptions in a group on every node.

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// groups is the hub's group membership on this node. A group with local
// members is subscribed on the broker, so that events published on any
// node reach them.
type groups struct {
	hub     *Hub
	mu      sync.RWMutex
	members map[string]map[*instance]struct{} // guarded by mu
	unsub   map[string]func()                 // guarded by mu
}

func (g *groups) join(name string, i *instance) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.members == nil {
		g.members = map[string]map[*instance]struct{}{}
		g.unsub = map[string]func(){}
	}
	m := g.members[name]
	if m == nil {
		m = map[*instance]struct{}{}
		g.members[name] = m
		unsub, err := g.hub.broker.Subscribe(g.hub.ctx, "group:"+name, func(raw []byte) { g.hub.deliverGroup(name, raw) })
		if err != nil {
			g.hub.log.Error("rx: subscribe group", "group", name, "err", err)
		} else {
			g.unsub[name] = unsub
		}
	}
	m[i] = struct{}{}
}

func (g *groups) leave(name string, i *instance) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.leaveLocked(name, i)
}

func (g *groups) leaveLocked(name string, i *instance) {
	if m := g.members[name]; m != nil {
		delete(m, i)
		if len(m) == 0 {
			delete(g.members, name)
			if u := g.unsub[name]; u != nil {
				delete(g.unsub, name)
				go u() // may talk to the broker
			}
		}
	}
}

func (g *groups) leaveAll(i *instance) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name := range g.members {
		g.leaveLocked(name, i)
	}
}

func (g *groups) list(name string) []*instance {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*instance, 0, len(g.members[name]))
	for i := range g.members[name] {
		out = append(out, i)
	}
	return out
}

// Publish sends an event to every subscription in a group: each runs its
// own handler for the event name, if it has one, with the payload
// JSON-encoded and decoded into the handler's type. Handlers of one
// subscription run one at a time, in publish order.
// Events go through the Broker, so they reach members on every node.
func (h *Hub) Publish(ctx context.Context, group, event string, payload any) error {
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("rx: publish %s to %s: %w", event, group, err)
	}
	msg, _ := json.Marshal(groupMessage{Event: event, Payload: raw})
	if err := h.broker.Publish(ctx, "group:"+group, msg); err != nil {
		return fmt.Errorf("rx: publish %s to %s: %w", event, group, err)
	}
	return nil
}

type groupMessage struct {
	Event   string          `json:"event"`
	Payload json.RawMessage `json:"payload"`
}

// deliverGroup runs a group event's handlers on this node's members.
func (h *Hub) deliverGroup(group string, raw []byte) {
	var m groupMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		h.log.Error("rx: bad group message", "group", group, "err", err)
		return
	}
	for _, i := range h.groups.list(group) {
		if hd := i.consumers[m.Event]; hd != nil {
			i.handle(hd, m.Event, m.Payload)
		}
	}
}

// handle runs a consumer handler on the instance's queue.
func (i *instance) handle(hd Handler, event string, raw json.RawMessage) {
	i.queue(func() {
		defer func() {
			if p := recover(); p != nil {
				i.sub.hub.log.Error("rx: consumer panicked", "channel", i.sub.def.name, "event", event, "panic", p)
			}
		}()
		if err := hd.handle(i.ctx, raw); err != nil {
			i.sub.hub.log.Error("rx: consumer failed", "channel", i.sub.def.name, "event", event, "err", err)
		}
	})
}

// Broadcast sends a system message to every listener registered with
// OnBroadcast on every node (the WebSocket servers forward it to every
// socket).
func (h *Hub) Broadcast(ctx context.Context, message any) error {
	raw, err := json.Marshal(message)
	if err != nil {
		return fmt.Errorf("rx: broadcast: %w", err)
	}
	if err := h.broker.Publish(ctx, "system", raw); err != nil {
		return fmt.Errorf("rx: broadcast: %w", err)
	}
	return nil
}

// system hands a broadcast from the broker to the local listeners.
func (h *Hub) system(raw []byte) {
	h.bmu.RLock()
	ls := make([]func(json.RawMessage), 0, len(h.listeners))
	for _, l := range h.listeners {
		ls = append(ls, l)
	}
	h.bmu.RUnlock()
	for _, l := range ls {
		l(raw)
	}
}

// OnBroadcast registers a listener for system messages and returns a
// function that removes it.
func (h *Hub) OnBroadcast(f func(message json.RawMessage)) (remove func()) {
	h.bmu.Lock()
	defer h.bmu.Unlock()
	if h.listeners == nil {
		h.listeners = map[int]func(json.RawMessage){}
	}
	h.nextListener++
	id := h.nextListener
	h.listeners[id] = f
	return func() {
		h.bmu.Lock()
		defer h.bmu.Unlock()
		delete(h.listeners, id)
	}
}
