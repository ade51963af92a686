package rx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Capture suite: every form of GORM write must reach subscribers as exactly
// the delta it causes, once per commit, and nothing must reach them for
// writes that do not commit. Every scenario runs on SQLite, PostgreSQL and MariaDB.

// ---------------------------------------------------------------------------
// Dialects and fixture.

type capDialect struct {
	name string
	open func(testing.TB) *gorm.DB
}

var capDialects = []capDialect{{"sqlite", openSQLite}, {"postgres", openPostgres}, {"mysql", openMySQL}}

// capWatch is one subscription and the state rebuilt from its events.
type capWatch struct {
	name   string
	anchor string
	params any
	sub    *rx.Subscription
	st     *rx.State
}

// capBase is what every capture fixture shares: a database, a hub, the
// subscriptions being watched and how to build a cold hub for comparison.
type capBase struct {
	t        *testing.T
	ctx      context.Context
	db       *gorm.DB
	h        *rx.Hub
	channel  string
	user     rx.User
	register func(*rx.Hub) error
	watches  []*capWatch
}

func (b *capBase) subscribe(name string, anchor uint, params any) *capWatch {
	b.t.Helper()
	sub, err := b.h.Subscribe(b.ctx, b.channel, params, b.user, rx.SubscribeOptions{})
	if err != nil {
		b.t.Fatalf("subscribe %s: %v", name, err)
	}
	st, err := b.h.NewState(b.channel, b.user)
	if err != nil {
		b.t.Fatal(err)
	}
	w := &capWatch{name: name, anchor: fmt.Sprint(anchor), params: params, sub: sub, st: st}
	ev := next(b.t, sub)
	if !ev.Snapshot {
		b.t.Fatalf("%s: first event is not a snapshot: %s", name, dump(ev))
	}
	st.Apply(ev)
	b.watches = append(b.watches, w)
	return w
}

// Fld is the exact set of fields an instance must carry, as Go values that
// are compared with the instance's JSON after encoding.
type Fld map[string]any

type capExp struct {
	typ, id string
	del     bool
	fields  Fld
}

// live expects a live instance with exactly these fields.
func live(typ string, id uint, f Fld) capExp { return capExp{typ: typ, id: fmt.Sprint(id), fields: f} }

// tomb expects a tombstone.
func tomb(typ string, id uint) capExp { return capExp{typ: typ, id: fmt.Sprint(id), del: true} }

// idList is a non-nil id list (JSON [] when empty).
// idList is a relation's id list as it travels: 64-bit keys are strings.
func idList(xs ...uint) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, sid(x))
	}
	return out
}

// sid is a 64-bit id as it travels: a JSON string.
func sid(x uint) string { return strconv.FormatUint(uint64(x), 10) }

func userFull(u User) capExp { return live("User", u.ID, Fld{"id": sid(u.ID), "name": u.Name}) }

func msgFull(m Message) capExp {
	return live("Message", m.ID, Fld{"id": sid(m.ID), "chatId": sid(m.ChatID), "senderId": sid(m.SenderID), "sender": sid(m.SenderID), "text": m.Text, "readers": idList()})
}

func chatField(id uint, field string, v any) capExp { return live("Chat", id, Fld{field: v}) }

// normJSON decodes JSON into a comparable Go value.
func normJSON(t testing.TB, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("bad JSON %s: %v", raw, err)
	}
	return v
}

// expect receives one delta on w and asserts it carries exactly want:
// these instances and no other, each with exactly these fields.
func (b *capBase) expect(w *capWatch, want ...capExp) *rx.Event {
	b.t.Helper()
	ev := next(b.t, w.sub)
	w.st.Apply(ev)
	for _, d := range b.diff(w, ev, want...) {
		b.t.Error(d)
	}
	return ev
}

// expectEither is expect for GORM operations that commit more than once
// (an association Replace, batches without a transaction): the engine reads
// the database after each commit, so an early commit's delta may already
// show what a later one wrote, leaving nothing for the later one. Each
// alternative is one exact sequence of deltas; the first delta received
// chooses the alternative, and the rest of it must follow exactly.
func (b *capBase) expectEither(w *capWatch, alts ...[][]capExp) {
	b.t.Helper()
	ev := next(b.t, w.sub)
	w.st.Apply(ev)
	var diffs []string
	for i, alt := range alts {
		d := b.diff(w, ev, alt[0]...)
		if len(d) == 0 {
			for _, want := range alt[1:] {
				b.expect(w, want...)
			}
			return
		}
		diffs = append(diffs, fmt.Sprintf("alternative %d:\n  %s", i+1, strings.Join(d, "\n  ")))
	}
	b.t.Errorf("%s: delta matches no alternative:\n%s", w.name, strings.Join(diffs, "\n"))
}

// diff lists how ev differs from the exact delta want.
func (b *capBase) diff(w *capWatch, ev *rx.Event, want ...capExp) []string {
	t := b.t
	t.Helper()
	var out []string
	errorf := func(format string, args ...any) { out = append(out, w.name+": "+fmt.Sprintf(format, args...)) }
	if ev.Snapshot {
		errorf("unexpected snapshot: %s", dump(ev))
		return out
	}
	if ev.Anchor != w.anchor {
		errorf("event of anchor %q, want %q", ev.Anchor, w.anchor)
	}
	got := map[cache.Key]*cache.Instance{}
	for _, in := range ev.Instances {
		if _, dup := got[in.Key()]; dup {
			errorf("instance %v twice in one event: %s", in.Key(), dump(ev))
		}
		got[in.Key()] = in
	}
	for _, x := range want {
		k := cache.Key{Type: x.typ, ID: x.id}
		in := got[k]
		if in == nil {
			errorf("missing %s %s (deleted=%v) in %s", x.typ, x.id, x.del, dump(ev))
			continue
		}
		delete(got, k)
		if in.Deleted != x.del {
			errorf("%s %s deleted=%v, want %v in %s", x.typ, x.id, in.Deleted, x.del, dump(ev))
			continue
		}
		if x.del {
			continue
		}
		var gotNames, wantNames []string
		for f := range in.Fields {
			gotNames = append(gotNames, f)
		}
		for f := range x.fields {
			wantNames = append(wantNames, f)
		}
		sort.Strings(gotNames)
		sort.Strings(wantNames)
		if !reflect.DeepEqual(gotNames, wantNames) {
			errorf("%s %s fields %v, want %v in %s", x.typ, x.id, gotNames, wantNames, dump(ev))
			continue
		}
		for f, v := range x.fields {
			wb, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if g, e := normJSON(t, in.Fields[f]), normJSON(t, wb); !reflect.DeepEqual(g, e) {
				errorf("%s %s field %s = %s, want %s", x.typ, x.id, f, in.Fields[f], wb)
			}
		}
	}
	for k := range got {
		errorf("unexpected instance %v in %s", k, dump(ev))
	}
	return out
}

// quiet asserts that no watched subscription has a pending event.
func (b *capBase) quiet() {
	b.t.Helper()
	for _, w := range b.watches {
		none(b.t, b.h, w.sub)
	}
}

// finish asserts that nothing else arrived and that the state rebuilt from
// the events equals the hub's snapshot and the snapshot of a cold hub that
// loads everything from the database afresh.
func (b *capBase) finish() {
	t := b.t
	t.Helper()
	if t.Failed() {
		return
	}
	b.quiet()
	db2 := reopen(t, b.db)
	t.Cleanup(func() {
		if s, err := db2.DB(); err == nil {
			s.Close()
		}
	})
	cold, err := rx.New(db2, rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cold.Close()
	if err := b.register(cold); err != nil {
		t.Fatal(err)
	}
	for _, w := range b.watches {
		got, err := w.st.JSON()
		if err != nil {
			t.Fatal(err)
		}
		hot, err := b.h.Snapshot(b.ctx, b.channel, w.params, b.user)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normJSON(t, got), normJSON(t, hot)) {
			t.Errorf("%s: state from events\n  %s\nhub snapshot\n  %s", w.name, got, hot)
		}
		fresh, err := cold.Snapshot(b.ctx, b.channel, w.params, b.user)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(normJSON(t, got), normJSON(t, fresh)) {
			t.Errorf("%s: state from events\n  %s\nfresh load from the database\n  %s", w.name, got, fresh)
		}
	}
}

func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// Chat fixture.
//
//	chat A: members alice, bob; messages m1 (alice, "hello"), m2 (dave, "from dave")
//	chat B: members carol;      messages m3 (carol, "yo")
//
// so A holds users alice, bob, dave and B holds carol. Both are watched.

type chatFx struct {
	*capBase
	alice, bob, carol, dave User
	chatA, chatB            Chat
	m1, m2, m3              Message
	a, b                    *capWatch
	probe                   *readProbe
}

// readProbe records the SELECTs run while it is on, to see which rows the
// engine re-reads after a commit: a write rolled back (to a savepoint or
// entirely) must not even be looked at. The callback is installed before
// the hub starts.
type readProbe struct {
	mu    sync.Mutex
	on    bool
	reads []probeRead
}

type probeRead struct {
	table string
	sql   string
	vars  []string
}

func installProbe(t testing.TB, db *gorm.DB) *readProbe {
	t.Helper()
	p := &readProbe{}
	noErr(t, db.Callback().Query().After("gorm:query").Register("captest:probe", func(tx *gorm.DB) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if !p.on {
			return
		}
		p.record(tx.Statement.Table, tx.Statement.SQL.String(), tx.Statement.Vars)
	}))
	rx.OnRowRead(t, db, func(_ context.Context, table, sql string, vars []any) string {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.on {
			p.record(table, sql, vars)
		}
		return sql
	})
	return p
}

// record notes one read; p.mu is held.
func (p *readProbe) record(table, sql string, vars []any) {
	r := probeRead{table: table, sql: strings.NewReplacer("`", "", `"`, "").Replace(sql)}
	for _, v := range vars {
		r.vars = append(r.vars, fmt.Sprint(v))
	}
	p.reads = append(p.reads, r)
}

// start clears the record and starts recording.
func (p *readProbe) start() {
	p.mu.Lock()
	p.on, p.reads = true, nil
	p.mu.Unlock()
}

// stop waits for the engine and returns what was recorded.
func (p *readProbe) stop(t testing.TB, h *rx.Hub) []probeRead {
	t.Helper()
	noErr(t, h.Wait(context.Background()))
	p.mu.Lock()
	defer p.mu.Unlock()
	p.on = false
	return p.reads
}

// rowsRead returns the primary keys of table's rows the engine re-read (it
// reads rows by primary key with SELECT *).
func rowsRead(reads []probeRead, table string) map[string]bool {
	out := map[string]bool{}
	for _, r := range reads {
		if r.table == table && strings.HasPrefix(r.sql, "SELECT * FROM "+table+" WHERE "+table+".id ") {
			for _, v := range r.vars {
				out[v] = true
			}
		}
	}
	return out
}

func newChatFx(t *testing.T, db *gorm.DB) *chatFx {
	t.Helper()
	migrate(t, db)
	f := &chatFx{
		alice: User{Name: "alice"}, bob: User{Name: "bob"}, carol: User{Name: "carol"}, dave: User{Name: "dave"},
	}
	for _, u := range []*User{&f.alice, &f.bob, &f.carol, &f.dave} {
		noErr(t, db.Create(u).Error)
	}
	f.chatA = Chat{Title: "A", Members: []User{f.alice, f.bob}}
	f.chatB = Chat{Title: "B", Members: []User{f.carol}}
	noErr(t, db.Create(&f.chatA).Error)
	noErr(t, db.Create(&f.chatB).Error)
	f.m1 = Message{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "hello"}
	f.m2 = Message{ChatID: f.chatA.ID, SenderID: f.dave.ID, Text: "from dave"}
	f.m3 = Message{ChatID: f.chatB.ID, SenderID: f.carol.ID, Text: "yo"}
	for _, m := range []*Message{&f.m1, &f.m2, &f.m3} {
		noErr(t, db.Create(m).Error)
	}
	f.probe = installProbe(t, db)
	f.capBase = &capBase{
		t: t, ctx: context.Background(), db: db, h: newHub(t, db),
		channel: "ChatChannel", user: rx.User{ID: "1"},
		register: func(h *rx.Hub) error { return h.Register(&ChatChannel{}, &ChatList{}) },
	}
	f.a = f.subscribe("chat A", f.chatA.ID, ChatParams{ChatID: f.chatA.ID})
	f.b = f.subscribe("chat B", f.chatB.ID, ChatParams{ChatID: f.chatB.ID})
	return f
}

// msg re-reads a message from the database (through a plain session).
func (f *chatFx) msg(id uint) Message {
	f.t.Helper()
	var m Message
	noErr(f.t, f.db.First(&m, id).Error)
	return m
}

func (f *chatFx) msgByText(text string) Message {
	f.t.Helper()
	var m Message
	noErr(f.t, f.db.Where("text = ?", text).First(&m).Error)
	return m
}

func (f *chatFx) countMessages(where string, args ...any) int64 {
	f.t.Helper()
	var n int64
	noErr(f.t, f.db.Model(&Message{}).Where(where, args...).Count(&n).Error)
	return n
}

// expectM2Moved expects the deltas of m2 (dave's only message in chat A)
// moving to chat B: gone from chat A with dave, in chat B with him.
func (f *chatFx) expectM2Moved() {
	f.t.Helper()
	moved := f.m2
	moved.ChatID = f.chatB.ID
	f.expect(f.a,
		tomb("Message", f.m2.ID),
		chatField(f.chatA.ID, "messages", idList(f.m1.ID)),
		tomb("User", f.dave.ID), // dave was only m2's sender
	)
	f.expect(f.b,
		chatField(f.chatB.ID, "messages", idList(f.m2.ID, f.m3.ID)),
		msgFull(moved), userFull(f.dave),
	)
}

// savepointRollbackThenCommit runs on db a transaction whose nested
// transaction (a savepoint) writes m1's text and rolls back, and which then
// writes m2's text "outer" and commits; the engine must re-read m2 only.
func (f *chatFx) savepointRollbackThenCommit(t *testing.T, db *gorm.DB) {
	t.Helper()
	f.probe.start()
	noErr(t, db.Transaction(func(tx *gorm.DB) error {
		_ = tx.Transaction(func(tx2 *gorm.DB) error {
			if err := tx2.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "inner").Error; err != nil {
				return err
			}
			return errAbort
		})
		return tx.Model(&Message{}).Where("id = ?", f.m2.ID).Update("text", "outer").Error
	}))
	if read := rowsRead(f.probe.stop(t, f.h), "messages"); !reflect.DeepEqual(read, map[string]bool{fmt.Sprint(f.m2.ID): true}) {
		t.Errorf("the engine re-read messages %v, want m2 only", read)
	}
}

// chatCase is a scenario on a chat fixture.
type chatCase = fxCase[*chatFx]

// runChatCases runs the cases on a chat fixture (newChatFx).
func runChatCases(t *testing.T, cases []chatCase) { runFxCases(t, newChatFx, cases) }

// ---------------------------------------------------------------------------
// Create.

func TestCaptureCreate(t *testing.T) {
	runChatCases(t, []chatCase{
		{"single", func(t *testing.T, f *chatFx) {
			m := Message{ChatID: f.chatA.ID, SenderID: f.carol.ID, Text: "new"}
			noErr(t, f.db.Create(&m).Error)
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, m.ID)),
				msgFull(m),
				userFull(f.carol), // the sender is new to chat A
			)
		}},
		{"batch slice", func(t *testing.T, f *chatFx) {
			ms := []Message{
				{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "x1"},
				{ChatID: f.chatB.ID, SenderID: f.dave.ID, Text: "x2"},
				{ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: "x3"},
			}
			noErr(t, f.db.Create(&ms).Error)
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, ms[0].ID, ms[2].ID)),
				msgFull(ms[0]), msgFull(ms[2]),
			)
			f.expect(f.b,
				chatField(f.chatB.ID, "messages", idList(f.m3.ID, ms[1].ID)),
				msgFull(ms[1]), userFull(f.dave),
			)
		}},
		{"CreateInBatches", func(t *testing.T, f *chatFx) {
			ms := make([]Message, 5)
			for i := range ms {
				ms[i] = Message{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: fmt.Sprintf("batch %d", i)}
			}
			noErr(t, f.db.CreateInBatches(&ms, 2).Error)
			// Three INSERTs in GORM's own transaction: one event.
			want := []capExp{chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, ms[0].ID, ms[1].ID, ms[2].ID, ms[3].ID, ms[4].ID))}
			for _, m := range ms {
				want = append(want, msgFull(m))
			}
			f.expect(f.a, want...)
		}},
		{"Model.Create map", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Model(&Message{}).Create(map[string]any{"ChatID": f.chatA.ID, "SenderID": f.bob.ID, "Text": "from map"}).Error)
			m := f.msgByText("from map")
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, m.ID)),
				msgFull(m),
			)
		}},
		{"OnConflict UpdateAll of an existing row", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&Message{ID: f.m1.ID, ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: "upserted"}).Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "upserted", "senderId": sid(f.bob.ID), "sender": sid(f.bob.ID)}))
		}},
		{"OnConflict DoNothing of an existing row", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Clauses(clause.OnConflict{DoNothing: true}).Create(&Message{ID: f.m1.ID, ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: "ignored"}).Error)
			if m := f.msg(f.m1.ID); m.Text != "hello" {
				t.Fatalf("DoNothing changed the row: %+v", m)
			}
			f.quiet()
		}},
		{"FirstOrCreate creating", func(t *testing.T, f *chatFx) {
			var m Message
			noErr(t, f.db.Where(Message{ChatID: f.chatA.ID, SenderID: f.carol.ID, Text: "foc"}).FirstOrCreate(&m).Error)
			if m.ID == 0 {
				t.Fatal("FirstOrCreate did not create")
			}
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, m.ID)),
				msgFull(m), userFull(f.carol),
			)
		}},
		{"FirstOrCreate finding an existing row", func(t *testing.T, f *chatFx) {
			var m Message
			noErr(t, f.db.Where(Message{ChatID: f.chatA.ID, Text: "hello"}).FirstOrCreate(&m).Error)
			if m.ID != f.m1.ID {
				t.Fatalf("found %d, want %d", m.ID, f.m1.ID)
			}
			f.quiet()
		}},
		{"FirstOrCreate with Assign on an existing row", func(t *testing.T, f *chatFx) {
			var m Message
			noErr(t, f.db.Where(Message{ID: f.m1.ID}).Assign(Message{Text: "assigned"}).FirstOrCreate(&m).Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "assigned"}))
		}},
	})
}

// ---------------------------------------------------------------------------
// Update.

func TestCaptureUpdate(t *testing.T) {
	runChatCases(t, []chatCase{
		{"Save of an existing row", func(t *testing.T, f *chatFx) {
			m := f.m1
			m.Text = "saved"
			noErr(t, f.db.Save(&m).Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "saved"}))
		}},
		{"Update", func(t *testing.T, f *chatFx) {
			m := f.m1
			noErr(t, f.db.Model(&m).Update("text", "updated").Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "updated"}))
		}},
		{"Updates struct", func(t *testing.T, f *chatFx) {
			m := f.m1
			noErr(t, f.db.Model(&m).Updates(Message{Text: "by struct", SenderID: f.bob.ID}).Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "by struct", "senderId": sid(f.bob.ID), "sender": sid(f.bob.ID)}))
		}},
		{"Updates map", func(t *testing.T, f *chatFx) {
			m := f.m1
			noErr(t, f.db.Model(&m).Updates(map[string]any{"text": "by map"}).Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "by map"}))
		}},
		{"UpdateColumn", func(t *testing.T, f *chatFx) {
			m := f.m1
			noErr(t, f.db.Model(&m).UpdateColumn("text", "column").Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "column"}))
		}},
		{"UpdateColumns", func(t *testing.T, f *chatFx) {
			m := f.m1
			noErr(t, f.db.Model(&m).UpdateColumns(map[string]any{"text": "columns", "sender_id": f.carol.ID}).Error)
			f.expect(f.a,
				live("Message", f.m1.ID, Fld{"text": "columns", "senderId": sid(f.carol.ID), "sender": sid(f.carol.ID)}),
				userFull(f.carol), // new sender, new to chat A
			)
		}},
		{"conditional Update of several rows", func(t *testing.T, f *chatFx) {
			res := f.db.Model(&Message{}).Where("chat_id = ?", f.chatA.ID).Update("text", "bulk")
			noErr(t, res.Error)
			if res.RowsAffected != 2 {
				t.Fatalf("RowsAffected = %d", res.RowsAffected)
			}
			f.expect(f.a,
				live("Message", f.m1.ID, Fld{"text": "bulk"}),
				live("Message", f.m2.ID, Fld{"text": "bulk"}),
			)
		}},
		{"conditional Updates across two chats", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Model(&Message{}).Where("id IN ?", []uint{f.m2.ID, f.m3.ID}).Updates(map[string]any{"text": "cross"}).Error)
			f.expect(f.a, live("Message", f.m2.ID, Fld{"text": "cross"}))
			f.expect(f.b, live("Message", f.m3.ID, Fld{"text": "cross"}))
		}},
		{"update of a shared user row", func(t *testing.T, f *chatFx) {
			u := f.dave
			noErr(t, f.db.Model(&u).Update("name", "david").Error)
			f.expect(f.a, live("User", f.dave.ID, Fld{"name": "david"}))
		}},
		{"no-op Update", func(t *testing.T, f *chatFx) {
			m := f.m1
			noErr(t, f.db.Model(&m).Update("text", "hello").Error)
			f.quiet()
		}},
		{"no-op conditional Updates", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Model(&Message{}).Where("chat_id IN ?", []uint{f.chatA.ID, f.chatB.ID}).Update("text", gorm.Expr("text")).Error)
			f.quiet()
		}},
		{"Save without change", func(t *testing.T, f *chatFx) {
			m := f.m1
			noErr(t, f.db.Save(&m).Error)
			f.quiet()
		}},
		{"conditional Update matching nothing", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Model(&Message{}).Where("text = ?", "nothing").Update("text", "x").Error)
			f.quiet()
		}},
	})
}

// ---------------------------------------------------------------------------
// Delete.

func TestCaptureDelete(t *testing.T) {
	runChatCases(t, []chatCase{
		{"by value", func(t *testing.T, f *chatFx) {
			m := f.m2
			noErr(t, f.db.Delete(&m).Error)
			f.expect(f.a,
				tomb("Message", f.m2.ID),
				chatField(f.chatA.ID, "messages", idList(f.m1.ID)),
				tomb("User", f.dave.ID), // only referenced by m2
			)
		}},
		{"by id", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Delete(&Message{}, f.m1.ID).Error)
			f.expect(f.a,
				tomb("Message", f.m1.ID),
				chatField(f.chatA.ID, "messages", idList(f.m2.ID)),
				// alice stays: she is a member.
			)
		}},
		{"by slice", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Delete(&[]Message{f.m1, f.m2}).Error)
			f.expect(f.a,
				tomb("Message", f.m1.ID), tomb("Message", f.m2.ID),
				chatField(f.chatA.ID, "messages", idList()),
				tomb("User", f.dave.ID),
			)
		}},
		{"conditional", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Where("chat_id = ?", f.chatA.ID).Delete(&Message{}).Error)
			f.expect(f.a,
				tomb("Message", f.m1.ID), tomb("Message", f.m2.ID),
				chatField(f.chatA.ID, "messages", idList()),
				tomb("User", f.dave.ID),
			)
		}},
		{"conditional across two chats", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Where("text IN ?", []string{"from dave", "yo"}).Delete(&Message{}).Error)
			f.expect(f.a,
				tomb("Message", f.m2.ID),
				chatField(f.chatA.ID, "messages", idList(f.m1.ID)),
				tomb("User", f.dave.ID),
			)
			f.expect(f.b,
				tomb("Message", f.m3.ID),
				chatField(f.chatB.ID, "messages", idList()),
				// carol stays: she is a member.
			)
		}},
		{"conditional matching nothing", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Where("text = ?", "nothing").Delete(&Message{}).Error)
			f.quiet()
		}},
	})
}

// ---------------------------------------------------------------------------
// Soft delete: a model with gorm.DeletedAt on its own channel.

type SoftBoard struct {
	ID    uint       `gorm:"primaryKey" json:"id"`
	Title string     `json:"title"`
	Notes []SoftNote `gorm:"foreignKey:BoardID" json:"notes"`
}

type SoftNote struct {
	ID        uint           `gorm:"primaryKey" json:"id"`
	BoardID   uint           `json:"boardId"`
	Text      string         `json:"text"`
	DeletedAt gorm.DeletedAt `gorm:"index" json:"-"`
}

type SoftBoardParams struct {
	BoardID uint `json:"boardId"`
}

type SoftBoardChannel struct {
	rx.Channel[SoftBoard, SoftBoardParams]
}

func (SoftBoardChannel) Authorize(context.Context, rx.User, SoftBoardParams) error { return nil }

type boardFx struct {
	*capBase
	b1, b2     SoftBoard
	n1, n2, n3 SoftNote
	w1, w2     *capWatch
}

func newBoardFx(t *testing.T, db *gorm.DB) *boardFx {
	t.Helper()
	noErr(t, db.AutoMigrate(&SoftBoard{}, &SoftNote{}))
	f := &boardFx{b1: SoftBoard{Title: "one"}, b2: SoftBoard{Title: "two"}}
	noErr(t, db.Create(&f.b1).Error)
	noErr(t, db.Create(&f.b2).Error)
	f.n1 = SoftNote{BoardID: f.b1.ID, Text: "n1"}
	f.n2 = SoftNote{BoardID: f.b1.ID, Text: "n2"}
	f.n3 = SoftNote{BoardID: f.b2.ID, Text: "n3"}
	for _, n := range []*SoftNote{&f.n1, &f.n2, &f.n3} {
		noErr(t, db.Create(n).Error)
	}
	h, err := rx.New(db, rx.Config{})
	noErr(t, err)
	t.Cleanup(func() { h.Close() })
	register := func(h *rx.Hub) error { return h.Register(&SoftBoardChannel{}) }
	noErr(t, register(h))
	f.capBase = &capBase{t: t, ctx: context.Background(), db: db, h: h, channel: "SoftBoardChannel", user: rx.User{ID: "1"}, register: register}
	f.w1 = f.subscribe("board 1", f.b1.ID, SoftBoardParams{BoardID: f.b1.ID})
	f.w2 = f.subscribe("board 2", f.b2.ID, SoftBoardParams{BoardID: f.b2.ID})
	return f
}

func noteFull(n SoftNote) capExp {
	return live("SoftNote", n.ID, Fld{"id": sid(n.ID), "boardId": sid(n.BoardID), "text": n.Text})
}

func (f *boardFx) exists(id uint) (live, stored bool) {
	f.t.Helper()
	var n1, n2 int64
	noErr(f.t, f.db.Model(&SoftNote{}).Where("id = ?", id).Count(&n1).Error)
	noErr(f.t, f.db.Unscoped().Model(&SoftNote{}).Where("id = ?", id).Count(&n2).Error)
	return n1 == 1, n2 == 1
}

func TestCaptureSoftDelete(t *testing.T) {
	runFxCases(t, newBoardFx, []fxCase[*boardFx]{
		{"by value", func(t *testing.T, f *boardFx) {
			n := f.n1
			noErr(t, f.db.Delete(&n).Error)
			if live, stored := f.exists(f.n1.ID); live || !stored {
				t.Fatalf("not soft-deleted: live=%v stored=%v", live, stored)
			}
			f.expect(f.w1, tomb("SoftNote", f.n1.ID), live("SoftBoard", f.b1.ID, Fld{"notes": idList(f.n2.ID)}))
		}},
		{"by id", func(t *testing.T, f *boardFx) {
			noErr(t, f.db.Delete(&SoftNote{}, f.n2.ID).Error)
			f.expect(f.w1, tomb("SoftNote", f.n2.ID), live("SoftBoard", f.b1.ID, Fld{"notes": idList(f.n1.ID)}))
		}},
		{"conditional across boards", func(t *testing.T, f *boardFx) {
			noErr(t, f.db.Where("text IN ?", []string{"n1", "n2", "n3"}).Delete(&SoftNote{}).Error)
			f.expect(f.w1, tomb("SoftNote", f.n1.ID), tomb("SoftNote", f.n2.ID), live("SoftBoard", f.b1.ID, Fld{"notes": idList()}))
			f.expect(f.w2, tomb("SoftNote", f.n3.ID), live("SoftBoard", f.b2.ID, Fld{"notes": idList()}))
		}},
		{"hard delete with Unscoped", func(t *testing.T, f *boardFx) {
			n := f.n3
			noErr(t, f.db.Unscoped().Delete(&n).Error)
			if _, stored := f.exists(f.n3.ID); stored {
				t.Fatal("row still stored")
			}
			f.expect(f.w2, tomb("SoftNote", f.n3.ID), live("SoftBoard", f.b2.ID, Fld{"notes": idList()}))
		}},
		{"restore with Unscoped update", func(t *testing.T, f *boardFx) {
			n := f.n1
			noErr(t, f.db.Delete(&n).Error)
			f.expect(f.w1, tomb("SoftNote", f.n1.ID), live("SoftBoard", f.b1.ID, Fld{"notes": idList(f.n2.ID)}))
			noErr(t, f.db.Unscoped().Model(&SoftNote{}).Where("id = ?", f.n1.ID).Update("deleted_at", nil).Error)
			f.expect(f.w1, noteFull(f.n1), live("SoftBoard", f.b1.ID, Fld{"notes": idList(f.n1.ID, f.n2.ID)}))
		}},
		{"update of a soft-deleted row is invisible", func(t *testing.T, f *boardFx) {
			n := f.n1
			noErr(t, f.db.Delete(&n).Error)
			f.expect(f.w1, tomb("SoftNote", f.n1.ID), live("SoftBoard", f.b1.ID, Fld{"notes": idList(f.n2.ID)}))
			noErr(t, f.db.Unscoped().Model(&SoftNote{}).Where("id = ?", f.n1.ID).Update("text", "ghost").Error)
			f.quiet()
		}},
	})
}

// ---------------------------------------------------------------------------
// Associations.

func TestCaptureAssociations(t *testing.T) {
	runChatCases(t, []chatCase{
		{"many2many Append of a user new to the chat", func(t *testing.T, f *chatFx) {
			c := f.chatA
			noErr(t, f.db.Model(&c).Association("Members").Append(&f.carol))
			f.expect(f.a,
				chatField(f.chatA.ID, "members", idList(f.alice.ID, f.bob.ID, f.carol.ID)),
				userFull(f.carol),
			)
		}},
		{"many2many Append of a user already in the state", func(t *testing.T, f *chatFx) {
			c := f.chatA
			noErr(t, f.db.Model(&c).Association("Members").Append(&f.dave)) // dave is m2's sender
			f.expect(f.a, chatField(f.chatA.ID, "members", idList(f.alice.ID, f.bob.ID, f.dave.ID)))
		}},
		{"many2many Append creating the user", func(t *testing.T, f *chatFx) {
			c := f.chatA
			eve := User{Name: "eve"}
			noErr(t, f.db.Model(&c).Association("Members").Append(&eve))
			f.expect(f.a,
				chatField(f.chatA.ID, "members", idList(f.alice.ID, f.bob.ID, eve.ID)),
				userFull(eve),
			)
		}},
		{"many2many Append on chat B of a member of chat A", func(t *testing.T, f *chatFx) {
			c := f.chatB
			noErr(t, f.db.Model(&c).Association("Members").Append(&f.alice))
			f.expect(f.b,
				chatField(f.chatB.ID, "members", idList(f.alice.ID, f.carol.ID)),
				userFull(f.alice),
			)
		}},
		{"many2many Replace", func(t *testing.T, f *chatFx) {
			c := f.chatA
			noErr(t, f.db.Model(&c).Association("Members").Replace(&f.carol))
			// GORM commits twice: the join row is added, then the others removed.
			final := []capExp{
				chatField(f.chatA.ID, "members", idList(f.carol.ID)),
				userFull(f.carol),
				tomb("User", f.bob.ID), // alice stays: she sent m1
			}
			f.expectEither(f.a,
				[][]capExp{final},
				[][]capExp{{
					chatField(f.chatA.ID, "members", idList(f.alice.ID, f.bob.ID, f.carol.ID)),
					userFull(f.carol),
				}, {
					chatField(f.chatA.ID, "members", idList(f.carol.ID)),
					tomb("User", f.bob.ID),
				}},
			)
		}},
		{"many2many Replace in one transaction", func(t *testing.T, f *chatFx) {
			c := f.chatA
			noErr(t, f.db.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&c).Association("Members").Replace(&f.carol)
			}))
			f.expect(f.a,
				chatField(f.chatA.ID, "members", idList(f.carol.ID)),
				userFull(f.carol),
				tomb("User", f.bob.ID),
			)
		}},
		{"many2many Delete", func(t *testing.T, f *chatFx) {
			c := f.chatA
			noErr(t, f.db.Model(&c).Association("Members").Delete(&f.alice, &f.bob))
			f.expect(f.a,
				chatField(f.chatA.ID, "members", idList()),
				tomb("User", f.bob.ID), // alice stays: she sent m1
			)
		}},
		{"many2many Clear", func(t *testing.T, f *chatFx) {
			c := f.chatA
			noErr(t, f.db.Model(&c).Association("Members").Clear())
			f.expect(f.a,
				chatField(f.chatA.ID, "members", idList()),
				tomb("User", f.bob.ID),
			)
		}},
		{"has-many Append of a new row", func(t *testing.T, f *chatFx) {
			c := f.chatB
			m := Message{SenderID: f.dave.ID, Text: "appended"}
			noErr(t, f.db.Model(&c).Association("Messages").Append(&m))
			if m.ID == 0 || m.ChatID != f.chatB.ID {
				t.Fatalf("append did not save: %+v", m)
			}
			f.expect(f.b,
				chatField(f.chatB.ID, "messages", idList(f.m3.ID, m.ID)),
				msgFull(m), userFull(f.dave),
			)
		}},
		{"has-many Append of a row of another chat", func(t *testing.T, f *chatFx) {
			c := f.chatB
			m := f.m2
			noErr(t, f.db.Model(&c).Association("Messages").Append(&m))
			f.expectM2Moved()
		}},
		{"has-many Replace", func(t *testing.T, f *chatFx) {
			c := f.chatA
			m := Message{SenderID: f.carol.ID, Text: "only"}
			noErr(t, f.db.Model(&c).Association("Messages").Replace(&m))
			// GORM commits twice: the new row, then the old rows' chat_id set to NULL.
			f.expectEither(f.a,
				[][]capExp{{
					chatField(f.chatA.ID, "messages", idList(m.ID)),
					msgFull(m), userFull(f.carol),
					tomb("Message", f.m1.ID), tomb("Message", f.m2.ID),
					tomb("User", f.dave.ID), // alice and bob stay: members
				}},
				[][]capExp{{
					chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, m.ID)),
					msgFull(m), userFull(f.carol),
				}, {
					chatField(f.chatA.ID, "messages", idList(m.ID)),
					tomb("Message", f.m1.ID), tomb("Message", f.m2.ID),
					tomb("User", f.dave.ID),
				}},
			)
			if n := f.countMessages("chat_id IS NULL"); n != 2 {
				t.Fatalf("%d orphaned messages, want 2", n)
			}
		}},
	})
}

// ---------------------------------------------------------------------------
// A message moving between chats.

func TestCaptureFKMove(t *testing.T) {
	runChatCases(t, []chatCase{
		{"sender new to the target chat", func(t *testing.T, f *chatFx) {
			m := f.m2
			noErr(t, f.db.Model(&m).Update("chat_id", f.chatB.ID).Error)
			f.expectM2Moved()
		}},
		{"sender staying in the source chat", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Model(&Message{}).Where("id = ?", f.m1.ID).Updates(map[string]any{"chat_id": f.chatB.ID, "text": "moved"}).Error)
			moved := f.m1
			moved.ChatID, moved.Text = f.chatB.ID, "moved"
			f.expect(f.a,
				tomb("Message", f.m1.ID),
				chatField(f.chatA.ID, "messages", idList(f.m2.ID)),
				// alice stays: member of A.
			)
			f.expect(f.b,
				chatField(f.chatB.ID, "messages", idList(f.m1.ID, f.m3.ID)),
				msgFull(moved),
				userFull(f.alice),
			)
		}},
		{"there and back in one transaction", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Transaction(func(tx *gorm.DB) error {
				m := f.m2
				if err := tx.Model(&m).Update("chat_id", f.chatB.ID).Error; err != nil {
					return err
				}
				return tx.Model(&m).Updates(map[string]any{"chat_id": f.chatA.ID, "text": "round trip"}).Error
			}))
			f.expect(f.a, live("Message", f.m2.ID, Fld{"text": "round trip"}))
		}},
	})
}

// ---------------------------------------------------------------------------
// Transactions.

var errAbort = errors.New("abort")

func TestCaptureTransactions(t *testing.T) {
	runChatCases(t, []chatCase{
		{"nothing before commit", func(t *testing.T, f *chatFx) {
			tx := f.db.Begin()
			noErr(t, tx.Error)
			m := Message{ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: "in tx"}
			noErr(t, tx.Create(&m).Error)
			f.probe.start()
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m3.ID).Update("text", "in tx too").Error)
			f.quiet()
			if n := len(rowsRead(f.probe.stop(t, f.h), "messages")); n != 0 {
				t.Errorf("the engine read %d messages before commit", n)
			}
			noErr(t, tx.Commit().Error)
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, m.ID)),
				msgFull(m),
			)
			f.expect(f.b, live("Message", f.m3.ID, Fld{"text": "in tx too"}))
		}},
		{"one deduplicated delta per commit", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Transaction(func(tx *gorm.DB) error {
				m1, m2 := f.m1, f.m2
				for i, step := range []struct {
					m    *Message
					text string
				}{{&m1, "a1"}, {&m2, "b1"}, {&m1, "a2"}, {&m2, "b2"}, {&m1, "a3"}} {
					step.m.Text = step.text
					if err := tx.Save(step.m).Error; err != nil {
						return fmt.Errorf("save %d: %w", i, err)
					}
				}
				return nil
			}))
			ev := f.expect(f.a,
				live("Message", f.m1.ID, Fld{"text": "a3"}),
				live("Message", f.m2.ID, Fld{"text": "b2"}),
			)
			for _, in := range ev.Instances {
				if in.Version != ev.Version {
					t.Errorf("instance %s/%s at version %d, event at %d", in.Type, in.ID, in.Version, ev.Version)
				}
			}
		}},
		{"rollback by error", func(t *testing.T, f *chatFx) {
			f.probe.start()
			err := f.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Create(&Message{ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: "rolled back"}).Error; err != nil {
					return err
				}
				if err := tx.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "rolled back").Error; err != nil {
					return err
				}
				return errAbort
			})
			if !errors.Is(err, errAbort) {
				t.Fatalf("err = %v", err)
			}
			if n := len(rowsRead(f.probe.stop(t, f.h), "messages")); n != 0 {
				t.Errorf("the engine read %d messages after a rollback", n)
			}
			if n := f.countMessages("text = ?", "rolled back"); n != 0 {
				t.Fatalf("%d rolled-back rows in the database", n)
			}
			f.quiet()
		}},
		{"explicit Rollback", func(t *testing.T, f *chatFx) {
			tx := f.db.Begin()
			noErr(t, tx.Create(&Message{ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: "rolled back"}).Error)
			m := f.m1
			noErr(t, tx.Delete(&m).Error)
			f.probe.start()
			noErr(t, tx.Rollback().Error)
			if n := len(f.probe.stop(t, f.h)); n != 0 {
				t.Errorf("the engine ran %d reads after a rollback", n)
			}
			f.quiet()
		}},
		{"panic", func(t *testing.T, f *chatFx) {
			func() {
				defer func() {
					if r := recover(); r == nil {
						t.Error("no panic")
					}
				}()
				_ = f.db.Transaction(func(tx *gorm.DB) error {
					if err := tx.Create(&Message{ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: "panicked"}).Error; err != nil {
						return err
					}
					if err := tx.Model(&Message{}).Where("id = ?", f.m3.ID).Update("text", "panicked").Error; err != nil {
						return err
					}
					panic("boom")
				})
			}()
			if n := f.countMessages("text = ?", "panicked"); n != 0 {
				t.Fatalf("%d rows of the panicked transaction in the database", n)
			}
			f.quiet()
		}},
		{"nested: inner fails, outer commits", func(t *testing.T, f *chatFx) {
			var outer1, outer2 Message
			f.probe.start()
			noErr(t, f.db.Transaction(func(tx *gorm.DB) error {
				outer1 = Message{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "outer before"}
				if err := tx.Create(&outer1).Error; err != nil {
					return err
				}
				err := tx.Transaction(func(tx2 *gorm.DB) error {
					if err := tx2.Create(&Message{ChatID: f.chatB.ID, SenderID: f.dave.ID, Text: "inner"}).Error; err != nil {
						return err
					}
					if err := tx2.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "inner").Error; err != nil {
						return err
					}
					return errAbort
				})
				if !errors.Is(err, errAbort) {
					return fmt.Errorf("inner: %v", err)
				}
				outer2 = Message{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "outer after"}
				return tx.Create(&outer2).Error
			}))
			if read := rowsRead(f.probe.stop(t, f.h), "messages"); read[fmt.Sprint(f.m1.ID)] || len(read) != 2 {
				t.Errorf("the engine re-read messages %v, want only the two outer ones", read)
			}
			if n := f.countMessages("text = ?", "inner"); n != 0 {
				t.Fatalf("%d inner rows in the database", n)
			}
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, outer1.ID, outer2.ID)),
				msgFull(outer1), msgFull(outer2),
			)
		}},
		{"nested: inner commits, outer fails", func(t *testing.T, f *chatFx) {
			err := f.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Transaction(func(tx2 *gorm.DB) error {
					return tx2.Create(&Message{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "inner"}).Error
				}); err != nil {
					return err
				}
				return errAbort
			})
			if !errors.Is(err, errAbort) {
				t.Fatalf("err = %v", err)
			}
			f.quiet()
		}},
		{"manual SavePoint and RollbackTo", func(t *testing.T, f *chatFx) {
			tx := f.db.Begin()
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "kept").Error)
			noErr(t, tx.SavePoint("sp1").Error)
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m2.ID).Update("text", "dropped").Error)
			noErr(t, tx.Create(&Message{ChatID: f.chatB.ID, SenderID: f.carol.ID, Text: "dropped"}).Error)
			noErr(t, tx.RollbackTo("sp1").Error)
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m3.ID).Update("text", "after").Error)
			f.quiet()
			f.probe.start()
			noErr(t, tx.Commit().Error)
			if read := rowsRead(f.probe.stop(t, f.h), "messages"); !reflect.DeepEqual(read, map[string]bool{fmt.Sprint(f.m1.ID): true, fmt.Sprint(f.m3.ID): true}) {
				t.Errorf("the engine re-read messages %v, want m1 and m3 only", read)
			}
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "kept"}))
			f.expect(f.b, live("Message", f.m3.ID, Fld{"text": "after"}))
		}},
		{"savepoint rolled back twice to the same mark", func(t *testing.T, f *chatFx) {
			tx := f.db.Begin()
			noErr(t, tx.SavePoint("sp1").Error)
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "dropped 1").Error)
			noErr(t, tx.RollbackTo("sp1").Error)
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m2.ID).Update("text", "kept").Error)
			noErr(t, tx.SavePoint("sp2").Error)
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "dropped 2").Error)
			noErr(t, tx.RollbackTo("sp2").Error)
			f.probe.start()
			noErr(t, tx.Commit().Error)
			if read := rowsRead(f.probe.stop(t, f.h), "messages"); !reflect.DeepEqual(read, map[string]bool{fmt.Sprint(f.m2.ID): true}) {
				t.Errorf("the engine re-read messages %v, want m2 only", read)
			}
			f.expect(f.a, live("Message", f.m2.ID, Fld{"text": "kept"}))
		}},
		{"RxDjango bug: rollback then commit", func(t *testing.T, f *chatFx) {
			err := f.db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "rolled back").Error; err != nil {
					return err
				}
				return errAbort
			})
			if !errors.Is(err, errAbort) {
				t.Fatalf("err = %v", err)
			}
			f.quiet()
			noErr(t, f.db.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&Message{}).Where("id = ?", f.m2.ID).Update("text", "committed").Error
			}))
			f.expect(f.a, live("Message", f.m2.ID, Fld{"text": "committed"}))
			// And an explicit Begin/Rollback followed by Begin/Commit.
			tx := f.db.Begin()
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m3.ID).Update("text", "rolled back").Error)
			noErr(t, tx.Rollback().Error)
			f.quiet()
			tx = f.db.Begin()
			noErr(t, tx.Model(&Message{}).Where("id = ?", f.m3.ID).Update("text", "committed").Error)
			noErr(t, tx.Commit().Error)
			f.expect(f.b, live("Message", f.m3.ID, Fld{"text": "committed"}))
			// And a plain write (GORM's implicit transaction).
			m := f.m1
			noErr(t, f.db.Model(&m).Update("text", "plain").Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "plain"}))
		}},
		{"RxDjango bug: savepoint rollback then outer commit", func(t *testing.T, f *chatFx) {
			f.savepointRollbackThenCommit(t, f.db)
			f.expect(f.a, live("Message", f.m2.ID, Fld{"text": "outer"}))
			// The next transaction is delivered too.
			noErr(t, f.db.Transaction(func(tx *gorm.DB) error {
				return tx.Model(&Message{}).Where("id = ?", f.m3.ID).Update("text", "next").Error
			}))
			f.expect(f.b, live("Message", f.m3.ID, Fld{"text": "next"}))
		}},
	})
}

// ---------------------------------------------------------------------------
// Sessions: SkipDefaultTransaction and PrepareStmt.

func TestCaptureSessions(t *testing.T) {
	runChatCases(t, []chatCase{
		{"SkipDefaultTransaction session", func(t *testing.T, f *chatFx) {
			s := f.db.Session(&gorm.Session{SkipDefaultTransaction: true})
			m := Message{ChatID: f.chatA.ID, SenderID: f.carol.ID, Text: "no tx"}
			noErr(t, s.Create(&m).Error)
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, m.ID)),
				msgFull(m), userFull(f.carol),
			)
			noErr(t, s.Model(&Message{}).Where("chat_id = ?", f.chatB.ID).Update("text", "no tx").Error)
			f.expect(f.b, live("Message", f.m3.ID, Fld{"text": "no tx"}))
			noErr(t, s.Delete(&m).Error)
			f.expect(f.a,
				tomb("Message", m.ID),
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID)),
				tomb("User", f.carol.ID),
			)
		}},
		{"SkipDefaultTransaction CreateInBatches: one delta per statement", func(t *testing.T, f *chatFx) {
			s := f.db.Session(&gorm.Session{SkipDefaultTransaction: true})
			ms := []Message{
				{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "b0"},
				{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "b1"},
				{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "b2"},
			}
			noErr(t, s.CreateInBatches(&ms, 2).Error)
			// Two INSERTs, each delivered on its own, unless the first
			// delta is computed after the second INSERT and carries both.
			f.expectEither(f.a,
				[][]capExp{{
					chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, ms[0].ID, ms[1].ID, ms[2].ID)),
					msgFull(ms[0]), msgFull(ms[1]), msgFull(ms[2]),
				}},
				[][]capExp{{
					chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, ms[0].ID, ms[1].ID)),
					msgFull(ms[0]), msgFull(ms[1]),
				}, {
					chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, ms[0].ID, ms[1].ID, ms[2].ID)),
					msgFull(ms[2]),
				}},
			)
		}},
		{"SkipDefaultTransaction in the Config", func(t *testing.T, f *chatFx) {
			f.db.Config.SkipDefaultTransaction = true
			t.Cleanup(func() { f.db.Config.SkipDefaultTransaction = false })
			m := f.m1
			noErr(t, f.db.Model(&m).Update("text", "config").Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "config"}))
			// Explicit transactions still buffer until commit.
			tx := f.db.Begin()
			noErr(t, tx.Model(&m).Update("text", "config tx").Error)
			f.quiet()
			noErr(t, tx.Commit().Error)
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "config tx"}))
		}},
		{"PrepareStmt session", func(t *testing.T, f *chatFx) {
			s := f.db.Session(&gorm.Session{PrepareStmt: true})
			m := Message{ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: "prepared"}
			noErr(t, s.Create(&m).Error)
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, m.ID)),
				msgFull(m),
			)
			noErr(t, s.Model(&Message{}).Where("id = ?", f.m3.ID).Update("text", "prepared").Error)
			f.expect(f.b, live("Message", f.m3.ID, Fld{"text": "prepared"}))
			// A transaction: buffered until commit, deduplicated.
			tx := s.Begin()
			noErr(t, tx.Model(&m).Update("text", "p1").Error)
			noErr(t, tx.Model(&m).Update("text", "p2").Error)
			f.quiet()
			noErr(t, tx.Commit().Error)
			f.expect(f.a, live("Message", m.ID, Fld{"text": "p2"}))
			// Rolled back: nothing.
			err := s.Transaction(func(tx *gorm.DB) error {
				if err := tx.Delete(&m).Error; err != nil {
					return err
				}
				return errAbort
			})
			if !errors.Is(err, errAbort) {
				t.Fatalf("err = %v", err)
			}
			f.quiet()
		}},
		{"PrepareStmt session: nested transaction rolled back", func(t *testing.T, f *chatFx) {
			f.savepointRollbackThenCommit(t, f.db.Session(&gorm.Session{PrepareStmt: true}))
			if m := f.msg(f.m1.ID); m.Text != "hello" {
				t.Fatalf("inner write committed: %+v", m)
			}
			f.expect(f.a, live("Message", f.m2.ID, Fld{"text": "outer"}))
		}},
	})
}

// ---------------------------------------------------------------------------
// A transaction rx does not own, and raw SQL.

func TestCaptureUnowned(t *testing.T) {
	runChatCases(t, []chatCase{
		{"db.Connection transaction is refused and rolled back", func(t *testing.T, f *chatFx) {
			err := f.db.Connection(func(tx *gorm.DB) error {
				return tx.Transaction(func(tx2 *gorm.DB) error {
					return tx2.Create(&Message{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "unowned"}).Error
				})
			})
			if !errors.Is(err, rx.ErrUnownedTransaction) {
				t.Fatalf("err = %v, want rx.ErrUnownedTransaction", err)
			}
			if n := f.countMessages("text = ?", "unowned"); n != 0 {
				t.Fatalf("%d unowned rows in the database", n)
			}
			f.quiet()
		}},
		{"raw SQL needs Touch", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Exec("UPDATE messages SET text = ? WHERE id = ?", "raw", f.m1.ID).Error)
			f.quiet()
			noErr(t, f.h.Touch(f.ctx, &Message{}, f.m1.ID))
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "raw"}))
		}},
		{"raw SQL move needs Touch", func(t *testing.T, f *chatFx) {
			noErr(t, f.db.Exec("UPDATE messages SET chat_id = ? WHERE id = ?", f.chatB.ID, f.m2.ID).Error)
			f.quiet()
			noErr(t, f.h.Touch(f.ctx, &Message{}, f.m2.ID))
			f.expectM2Moved()
		}},
	})
}

// ---------------------------------------------------------------------------
// Concurrency.

func TestCaptureConcurrency(t *testing.T) {
	runChatCases(t, []chatCase{
		{"20 transactions, half rolled back", func(t *testing.T, f *chatFx) {
			var (
				wg        sync.WaitGroup
				mu        sync.Mutex
				committed = map[string]bool{}
				errs      []error
			)
			for i := 0; i < 20; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					var m Message
					err := f.db.Transaction(func(tx *gorm.DB) error {
						m = Message{ChatID: f.chatA.ID, SenderID: f.bob.ID, Text: fmt.Sprintf("c%02d", i)}
						if err := tx.Create(&m).Error; err != nil {
							return err
						}
						if i%2 == 1 {
							return errAbort
						}
						return nil
					})
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						committed[fmt.Sprint(m.ID)] = true
					case !errors.Is(err, errAbort):
						errs = append(errs, err)
					}
				}(i)
			}
			wg.Wait()
			for _, err := range errs {
				t.Error(err)
			}
			if len(committed) != 10 {
				t.Fatalf("%d committed", len(committed))
			}
			noErr(t, f.h.Wait(f.ctx))
			seen := map[string]bool{}
			var list []string
		drain:
			for {
				select {
				case ev := <-f.a.sub.Events():
					if ev == nil {
						t.Fatalf("subscription ended: %v", f.a.sub.Err())
					}
					f.a.st.Apply(ev)
					for _, in := range ev.Instances {
						switch {
						case in.Type == "Message" && !in.Deleted:
							if seen[in.ID] {
								t.Errorf("message %s delivered twice", in.ID)
							}
							if !committed[in.ID] {
								t.Errorf("message %s delivered but not committed: %s", in.ID, dump(ev))
							}
							seen[in.ID] = true
							if !strings.HasPrefix(string(in.Fields["text"]), `"c`) {
								t.Errorf("message %s delivered partially: %s", in.ID, dump(ev))
							}
						case in.Type == "Chat" && !in.Deleted:
							list = nil
							noErr(t, json.Unmarshal(in.Fields["messages"], &list))
						default:
							t.Errorf("unexpected instance %v in %s", in.Key(), dump(ev))
						}
					}
				default:
					break drain
				}
			}
			if len(seen) != 10 {
				t.Errorf("%d messages delivered, want 10", len(seen))
			}
			if len(list) != 12 {
				t.Errorf("final messages list %v, want 12 entries", list)
			}
		}},
	})
}
