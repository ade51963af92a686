package rx

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"

	"gorm.io/gorm"
)

// Channel marks a single-anchor channel. Embed it in your channel type:
//
//	type ChatChannel struct{ rx.Channel[Chat, ChatParams] }
//
// The state is one Chat with everything reachable from it. T is the anchor
// model; P is the parameters a client subscribes with. The anchor id is
// taken from P (see AnchorIDer), and access is denied unless the channel
// type implements Authorizer[P].
type Channel[T any, P any] struct{ binding }

// List marks a list channel: its state is an ordered list of anchors, chosen
// per subscription by the channel's Anchors method (Lister[P]).
//
//	type ChatsChannel struct{ rx.List[Chat, rx.NoParams] }
type List[T any, P any] struct{ binding }

// NoParams is the parameter type of a channel that takes none.
type NoParams struct{}

// Authorizer is implemented by a channel type that lets users subscribe.
// Returning nil allows; any error denies (an *Error chooses the code, any
// other error is sent as forbidden). Channels without it deny everyone.
type Authorizer[P any] interface {
	Authorize(ctx context.Context, u User, p P) error
}

// AnchorIDer is implemented by a single-anchor channel that computes its
// anchor's primary key from the parameters. Without it, the anchor id is
// the field of P tagged rx:"anchor", or P's only field.
type AnchorIDer[P any] interface {
	AnchorID(ctx context.Context, u User, p P) (any, error)
}

// Lister is implemented by every list channel: it returns the query that
// selects the anchors of one subscription, with its ordering, for example
// db.Where("owner_id = ?", u.ID).Order("created_at desc").
type Lister[P any] interface {
	Anchors(ctx context.Context, db *gorm.DB, u User, p P) *gorm.DB
}

// Namer is implemented by a channel type that chooses its registered name.
// The default is the Go type name.
type Namer interface {
	ChannelName() string
}

// declarer is implemented by Channel and List (and promoted to the types
// that embed them).
type declarer interface {
	rxDeclare(outer any) (*channelDef, error)
}

// channelDef is the registered form of a channel.
type channelDef struct {
	name        string
	goType      reflect.Type
	elemType    reflect.Type // the channel struct type
	actions     map[string]*actionDef
	runtime     reflect.Type // R of an embedded Runtime[R], if any
	anchorType  reflect.Type
	paramsType  reflect.Type
	many        bool
	anchor      *layer
	layers      []*layer // reachable from the anchor, anchor first
	hasLayer    map[*layer]bool
	fingerprint string               // of the state model, part of the store key
	proto       any                  // the value passed to Register
	writes      map[string]*writeDef // client writes by layer name (write.go)
	writeOrder  []*writeDef          // the same, in declaration order
	presence    *PresenceOptions     // nil: presence not tracked (presence.go)
	reauth      *reauthDef           // nil: no dependency in the state (reauth.go)
	outside     []outsideDep         // dependencies outside the state (reauth.go)
	depEpoch    atomic.Uint64        // commits that touched a dependency (reauth.go)

	decode    func(raw any) (any, error) // params from P, *P or JSON
	authorize func(ctx context.Context, u User, p any) error
	// authorizeUsers is set when the channel implements UsersAuthorizer
	// (reauth.go).
	authorizeUsers func(ctx context.Context, p any, users []User) []error
	anchorID       func(ctx context.Context, u User, p any) (any, error)
	list           func(ctx context.Context, db *gorm.DB, u User, p any) *gorm.DB
}

func (Channel[T, P]) rxDeclare(outer any) (*channelDef, error) { return declare[T, P](outer, false) }

func (List[T, P]) rxDeclare(outer any) (*channelDef, error) { return declare[T, P](outer, true) }

func declare[T, P any](outer any, many bool) (*channelDef, error) {
	d := &channelDef{
		goType:     reflect.TypeOf(outer),
		anchorType: reflect.TypeFor[T](),
		paramsType: reflect.TypeFor[P](),
		many:       many,
		proto:      outer,
	}
	gt := d.goType
	for gt.Kind() == reflect.Pointer {
		gt = gt.Elem()
	}
	d.name = gt.Name()
	d.elemType = gt
	if r, ok := outer.(interface{ rxRuntimeType() reflect.Type }); ok {
		d.runtime = r.rxRuntimeType()
	}
	if err := checkHooks(outer, []hook{
		{"ChannelName", reflect.TypeFor[Namer](), false},
		{"Authorize", reflect.TypeFor[Authorizer[P]](), false},
		{"AnchorID", reflect.TypeFor[AnchorIDer[P]](), false},
		{"Anchors", reflect.TypeFor[Lister[P]](), false},
		{"Actions", reflect.TypeFor[Actioner](), false},
		{"Writable", reflect.TypeFor[Writer](), false},
		{"TrackPresence", reflect.TypeFor[PresenceTracker](), false},
		{"OnConnect", reflect.TypeFor[Connecter](), true},
		{"OnDisconnect", reflect.TypeFor[Disconnecter](), true},
		{"Consumers", reflect.TypeFor[Consumer](), true},
		{"OnPresence", reflect.TypeFor[PresenceWatcher](), true},
	}); err != nil {
		return nil, err
	}
	if n, ok := outer.(Namer); ok {
		d.name = n.ChannelName()
	}
	if d.name == "" {
		return nil, &DeclarationError{Type: typeName(d.goType), Reason: "a channel needs a name: use a named type or a ChannelName method"}
	}
	at := d.anchorType
	if at.Kind() != reflect.Struct {
		return nil, &DeclarationError{Type: typeName(d.goType), Reason: fmt.Sprintf("anchor %s is not a struct model", at)}
	}
	d.decode = func(raw any) (any, error) {
		switch v := raw.(type) {
		case P:
			return v, nil
		case *P:
			if v != nil {
				return *v, nil
			}
		case nil:
		case json.RawMessage, []byte:
			var p P
			b, _ := v.([]byte)
			if rm, ok := v.(json.RawMessage); ok {
				b = rm
			}
			if len(b) == 0 || string(b) == "null" {
				return p, nil
			}
			if err := unmarshalInput(b, &p); err != nil {
				return nil, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("params of %s: %v", d.name, err), Err: err}
			}
			return p, nil
		default:
			return nil, Errorf(CodeBadRequest, "params of %s: want %s, got %T", d.name, d.paramsType, raw)
		}
		var p P
		return p, nil
	}
	if gt.Kind() != reflect.Struct {
		return nil, &DeclarationError{Type: typeName(d.goType), Reason: "a channel must be a struct type"}
	}
	if err := declareActions(d); err != nil {
		return nil, err
	}
	if a, ok := outer.(Authorizer[P]); ok {
		d.authorize = func(ctx context.Context, u User, p any) error { return a.Authorize(ctx, u, p.(P)) }
	}
	if a, ok := outer.(UsersAuthorizer[P]); ok {
		d.authorizeUsers = func(ctx context.Context, p any, users []User) []error { return a.AuthorizeUsers(ctx, p.(P), users) }
	}
	if many {
		l, ok := outer.(Lister[P])
		if !ok {
			return nil, &DeclarationError{Type: typeName(d.goType), Reason: fmt.Sprintf("list channel needs a method Anchors(ctx context.Context, db *gorm.DB, u rx.User, p %s) *gorm.DB", d.paramsType)}
		}
		d.list = func(ctx context.Context, db *gorm.DB, u User, p any) *gorm.DB { return l.Anchors(ctx, db, u, p.(P)) }
		return d, nil
	}
	if a, ok := outer.(AnchorIDer[P]); ok {
		d.anchorID = func(ctx context.Context, u User, p any) (any, error) { return a.AnchorID(ctx, u, p.(P)) }
		return d, nil
	}
	idx, err := anchorField(d)
	if err != nil {
		return nil, err
	}
	d.anchorID = func(ctx context.Context, u User, p any) (any, error) {
		return reflect.ValueOf(p).FieldByIndex(idx).Interface(), nil
	}
	return d, nil
}

// hook is an optional method of a channel type, found by its interface.
type hook struct {
	name  string
	iface reflect.Type // the interface with that one method
	// onInstance: looked up on the subscription's own *T, so pointer
	// receivers work whether T or *T was registered. Otherwise the hook is
	// looked up on the value given to Register.
	onInstance bool
}

// checkHooks refuses a channel that has a method named like a hook but does
// not implement the hook: a wrong signature, or a pointer receiver on a
// channel registered by value. Either way the hook would be silently
// ignored (a subscription denied by default, an action unknown).
func checkHooks(outer any, hooks []hook) error {
	t := reflect.TypeOf(outer)
	elem := t
	for elem.Kind() == reflect.Pointer {
		elem = elem.Elem()
	}
	pt := reflect.PointerTo(elem)
	for _, h := range hooks {
		at := t
		if h.onInstance {
			at = pt
		}
		if at.Implements(h.iface) {
			continue
		}
		m, ok := pt.MethodByName(h.name)
		if !ok {
			continue
		}
		want := h.name + strings.TrimPrefix(h.iface.Method(0).Type.String(), "func")
		if pt.Implements(h.iface) {
			return &DeclarationError{Type: typeName(t), Field: h.name, Reason: fmt.Sprintf("%s has a pointer receiver, but the channel was registered as a value, so it would never run: register &%s{} (the method is %s)", h.name, elem.Name(), want)}
		}
		got := h.name + strings.TrimPrefix(methodType(m).String(), "func")
		return &DeclarationError{Type: typeName(t), Field: h.name, Reason: fmt.Sprintf("method %s does not match the hook, so it would never run: want %s", got, want)}
	}
	return nil
}

// methodType is a method's type without its receiver.
func methodType(m reflect.Method) reflect.Type {
	ft := m.Type
	in := make([]reflect.Type, 0, ft.NumIn()-1)
	for i := 1; i < ft.NumIn(); i++ {
		in = append(in, ft.In(i))
	}
	out := make([]reflect.Type, 0, ft.NumOut())
	for i := 0; i < ft.NumOut(); i++ {
		out = append(out, ft.Out(i))
	}
	return reflect.FuncOf(in, out, ft.IsVariadic())
}

// anchorField finds the params field that holds the anchor id.
func anchorField(d *channelDef) ([]int, error) {
	pt := d.paramsType
	if pt.Kind() != reflect.Struct {
		return nil, &DeclarationError{Type: typeName(d.goType), Reason: fmt.Sprintf("params %s must be a struct, or the channel must implement AnchorID", pt)}
	}
	var exported []int
	for i := 0; i < pt.NumField(); i++ {
		sf := pt.Field(i)
		if !sf.IsExported() {
			continue
		}
		exported = append(exported, i)
		if strings.Contains(","+sf.Tag.Get("rx")+",", ",anchor,") {
			return sf.Index, nil
		}
	}
	if len(exported) == 1 {
		return []int{exported[0]}, nil
	}
	return nil, &DeclarationError{Type: typeName(d.goType), Reason: fmt.Sprintf("cannot tell which field of %s is the anchor id: tag it rx:\"anchor\" or implement AnchorID", pt)}
}
