// Package codegen generates TypeScript (or plain JavaScript with
// declarations) for rxgorm channels: interfaces for every layer and every
// Go type the channels' params, actions and runtime state use, a typed
// class per channel, and the client runtime those classes are built on,
// which this package ships (embedded, written next to the generated files).
//
// Generation is a pure function, Generate (or GenerateWith): an Input in,
// file contents out, the same bytes for the same input. Load builds the
// Input from a Go package; Sync writes the files or reports the stale ones;
// cmd/makefrontend does both from the command line:
//
//	go run github.com/rxgorm/rxgorm/cmd/makefrontend -pkg ./app -out web/src/rx
//
// # The Go side
//
// The package named by -pkg must have a function Channels() []any (another
// name: -func) returning its channel values, the ones it registers on its
// Hub. Load builds and runs a small program that calls rx.Describe on them
// (reflection sees exactly what Hub.Register sees) and reads the package's
// source for what reflection cannot see: the constants of named types
// (enums) and the names of action parameters.
//
// # Flags of makefrontend
//
//	-pkg DIR|IMPORT   Go package with the channels (required)
//	-out DIR          output folder (required)
//	-name NAME        base name of the generated files (default: the Go
//	                  package name)
//	-func NAME        function returning the channels (default Channels)
//	-js               emit plain JavaScript with .d.ts declarations instead
//	                  of TypeScript (Options.JS)
//	-bindings LIST    framework bindings written with the runtime,
//	                  comma-separated, of react, vue and svelte (default
//	                  react; empty: none) (Options.Bindings)
//	-check            write nothing; exit 1 with a diff if the files on disk
//	                  are stale (for CI)
//	-dry-run          write nothing; print the diff
//
// Writing makes the folder match: changed files are rewritten and generated
// files no longer produced are removed. Only files that start with Header
// are generated; others in the folder are never touched.
//
// # What is emitted
//
// In the output folder, for -name NAME:
//
//	NAME.interfaces.ts     the types: one interface per layer (a row in the
//	                       state, relations nested), one per Go struct type
//	                       used by params, action arguments and results and
//	                       runtime state (named with "Data" appended when a
//	                       layer has the name, with the package name prepended
//	                       when two packages use one name), one union per enum
//	NAME.channels.ts       one class per channel, extending ContextChannel,
//	                       with its layer model and one method per action
//	rxgorm/*.ts            the runtime (codegen/ts/src/runtime, verbatim):
//	                       index.ts is its API, view.ts the framework-agnostic
//	                       store; react.ts, vue.ts and svelte.ts the bindings
//	                       chosen by -bindings
//
// With -js, instead: NAME.interfaces.d.ts, NAME.channels.js with
// NAME.channels.d.ts, and rxgorm/*.js with rxgorm/*.d.ts (the runtime
// built by tsc, codegen/ts/dist/runtime): ES modules that node 20+ and
// browsers run as they are, and that editors and tsc type-check through the
// declarations. Every file imports only its neighbours (relative, with .js
// extensions) and, in the bindings only, react or vue; the runtime uses no
// Node API (the WebSocket is globalThis.WebSocket or the WebSocket option;
// in node 20, pass the ws package's).
//
// # Types
//
// Each Go type is described by rx.Describe as encoding/json encodes it (an
// rx.TypeDesc of some rx.Kind) and mapped so:
//
//	rx.KindBool               boolean ("true" | "false" with ,string)
//	rx.KindInt, KindUint,     number; string when quoted (,string) and for
//	rx.KindFloat              64-bit keys, foreign keys and id lists, which
//	                          travel as JSON strings so JavaScript holds them
//	                          exactly (docs/PROTOCOL.md); an action argument
//	                          of a 64-bit integer accepts number | string
//	rx.KindString, KindTime,  string (time.Time is RFC 3339, []byte base64)
//	rx.KindBytes
//	rx.KindSlice, KindArray   T[]
//	rx.KindMap                Record<string, T>
//	rx.KindStruct             an inline object type ({ a: T; b?: U; }, an
//	                          omitempty field optional)
//	rx.KindRef                the named interface (a Go struct type) or layer
//	rx.KindAny                unknown
//	a named type with         the union of its constants' values
//	declared constants
//
// Nullable values (pointers, slices, maps) add " | null". In a layer's
// interface, a to-many relation is Target[], a to-one relation Target |
// null, and a relation tagged rx:"ids" the key type's array; a field tagged
// json:"-" is absent.
//
// # Channel classes
//
// For a channel ChatChannel (rx.Channel[Chat, ChatParams], runtime state
// ChatRuntime, an action SendMessage) the class is
//
//	export class ChatChannel extends ContextChannel<Chat, ChatParams, ChatRuntime, ChatChannelWrites> {
//	  static readonly channel = "ChatChannel";
//	  readonly model = ChatChannelModel; // which layers nest where
//	  constructor(conn: Connection | ConnectionOptions, params: ChatParams) { ... }
//	  sendMessage(text: string): Promise<Message> { ... } // the action "sendMessage"
//	}
//
// The state type is the anchor layer (Chat | null before the snapshot), or
// an array of it for a list channel (rx.List). Params with no fields may be
// left out. The fourth type argument, <Channel>Writes, exists for channels
// that allow client writes (rx.Writer) and types save, create and delete.
// An action whose name is a reserved word or a ContextChannel member gets
// "_" appended.
//
// The server sends the state flat: each row once, as an instance of its
// layer, keyed by layer and id (docs/PROTOCOL.md). The class's model names,
// for each layer reachable from the anchor, its relations and their target
// layers; the runtime keeps the instances of a stream in a normalized index
// and rebuilds the nested state from it after each snapshot or delta, with
// structural sharing: an object whose rows did not change is the same
// object as before (=== holds), so a renderer can skip it. Rows shared by
// several parents (a user in members and as a sender) are one instance,
// updated once. Ordered and limited relations keep the server's order.
//
// # The runtime API
//
// From rxgorm/index.js:
//
//	new ChatChannel({ url, token }, params)   a channel on the shared
//	                                          Connection of url and token
//	                                          (Connection.get); options:
//	                                          WebSocket, backoffBase, backoffMax
//	channel.subscribe(listener) -> off        state listener; the first one
//	                                          subscribes on the socket, the
//	                                          last one's off unsubscribes
//	channel.getState(), .status, .error,      the state (null before the
//	.ready, getRuntime()                      snapshot), "idle" | "subscribing"
//	                                          | "ready" | "reconnecting" |
//	                                          "error" | "closed", the RxError,
//	                                          true once the snapshot was
//	                                          complete, the runtime state
//	channel.onStatus, onRuntime, onPresence   listeners of the rest
//	channel.presence, presenceOf(anchor)      who is connected (channels that
//	                                          track presence)
//	channel.<action>(args)                    the action; rejects with RxError
//	                                          { code, message }
//	channel.save(type, id, fields),           client writes, shown at once,
//	create("Type.field", parent, fields),     undone if the server refuses
//	delete(type, id)
//	channelStore(channel)                     the framework-agnostic store:
//	                                          subscribe(listener) -> off and
//	                                          getState(), a ChannelView
//	                                          { state, status, error, runtime,
//	                                          ready, presence } that is a new
//	                                          object only when one changed
//	Connection, RxError, ErrorCode,           the socket (reconnects with
//	CloseCode                                 backoff and resumes from the last
//	                                          version), errors and their codes
//
// The bindings: rxgorm/react.js's useChannel(channel) returns the
// ChannelView (useSyncExternalStore); rxgorm/vue.js's useChannel(channel,
// or a ref or getter of one) returns it as a shallow ref, subscribed while
// the calling effect scope lives; rxgorm/svelte.js's readableChannel
// (channel) is a Svelte store of it ($chat.state in a component, get(chat)
// from svelte/store). codegen/ts/README.md has more, and docs/QUICKSTART.md
// uses it from node and React.
package codegen
