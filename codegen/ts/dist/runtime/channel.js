// ContextChannel: the base class of the generated channel classes.
//
// A generated class fixes the type parameters and declares the three
// abstract members as readonly fields, and adds one method per action:
//
//   export class ChatChannel extends ContextChannel<ChatState, ChatParams, ChatRuntime> {
//     static readonly channel = "ChatChannel";
//     readonly channel = "ChatChannel";
//     readonly many = false;
//     readonly model = MODEL; // a ChannelModel (see model.ts)
//     constructor(conn: Connection | ConnectionOptions, params: ChatParams) { super(conn, params); }
//     sendMessage(text: string): Promise<Message> { return this.callAction("sendMessage", [text]); }
//   }
//
// State is the whole state: the anchor's nested type for a single-anchor
// channel (many = false), an array of it for a list channel (many = true).
// Runtime is the channel's runtime-state type (use Record<string, never>
// when it has none). W types the client writes the channel allows (see
// Writes); the generator emits it for channels that declare writes, and
// save, create and delete cannot be called on the others.
//
// The subclass's fields are set after this constructor runs, so the
// constructor reads none of them: the subscription is made lazily by the
// first subscribe(). It ends when the last state listener leaves; status
// and runtime listeners alone do not hold it.
import { Connection } from "./connection.js";
import { ErrorCode } from "./codes.js";
import { RxError } from "./errors.js";
import { Listeners } from "./listeners.js";
const EMPTY = Object.freeze({});
const NOBODY = Object.freeze([]);
/** A typed channel over a (shared) connection; see the file comment. */
export class ContextChannel {
    connection;
    params;
    #sub = null;
    #stateListeners = new Listeners();
    #statusListeners = new Listeners();
    #runtimeListeners = new Listeners();
    #presenceListeners = new Listeners();
    /**
     * conn is a Connection, or the url and token (plus options) of the shared
     * connection to use (Connection.get).
     */
    constructor(conn, params) {
        this.connection = isConnection(conn) ? conn : Connection.get(conn.url, conn);
        this.params = params;
    }
    /**
     * Calls listener with the new state after each change. The first listener
     * subscribes on the socket, and removing the last one unsubscribes.
     */
    subscribe(listener) {
        const off = this.#stateListeners.add(listener);
        if (!this.#sub)
            this.#open();
        let done = false;
        return () => {
            if (done)
                return;
            done = true;
            off();
            if (this.#stateListeners.size === 0)
                this.#close();
        };
    }
    /** Calls listener when status or error change. */
    onStatus(listener) {
        return this.#statusListeners.add(listener);
    }
    /** Calls listener when the runtime state changes. */
    onRuntime(listener) {
        return this.#runtimeListeners.add(listener);
    }
    /** Calls listener with an anchor's presence list (and the anchor) when it changes. */
    onPresence(listener) {
        return this.#presenceListeners.add(listener);
    }
    /**
     * Who is connected to the channel's stream (single-anchor channels that
     * track presence): user ids and their subscription counts, over every
     * server node; empty without subscription.
     */
    get presence() {
        return this.#sub?.presence ?? NOBODY;
    }
    /** Who is connected to the stream of one anchor (list channels). */
    presenceOf(anchor) {
        return this.#sub?.presenceOf(String(anchor)) ?? NOBODY;
    }
    /**
     * Saves fields of a row, showing them at once; resolves when the server
     * committed the write, rejects with its RxError (the state then is as if
     * the write had not been made).
     */
    async save(type, id, fields) {
        await this.#write({ op: "save", layer: type, row: id, fields: fields });
    }
    /**
     * Creates a row under a parent's relation ("Type.field"), showing a
     * temporary row at once; resolves with the new row's key once the server
     * committed it (the real row has replaced the temporary one in the
     * state), rejects with the server's RxError (the temporary row is gone).
     */
    async create(relation, parent, fields) {
        const layer = this.model.writes
            ? (Object.entries(this.model.writes).find(([, w]) => w.create?.[relation])?.[0] ?? "")
            : "";
        const row = await this.#write({ op: "create", layer, relation, parent, fields: fields });
        const key = this.model.writes?.[layer]?.idType === "number" ? Number(row) : row;
        return key;
    }
    /**
     * Deletes a row, hiding it at once; rejects with the server's RxError,
     * the row then back in its place.
     */
    async delete(type, id) {
        await this.#write({ op: "delete", layer: type, row: id });
    }
    #write(req) {
        if (!this.#sub) {
            return Promise.reject(new RxError(ErrorCode.NotFound, `${this.channel} is not subscribed: subscribe before writing`));
        }
        return this.#sub.write(req);
    }
    /** The state: null before the first snapshot or without subscription. */
    getState() {
        return this.#sub?.getState() ?? null;
    }
    /** The runtime state pushed by the channel so far ({} without subscription). */
    getRuntime() {
        return this.#sub?.runtime ?? EMPTY;
    }
    /** "idle" without subscription, else the subscription's status. */
    get status() {
        return this.#sub?.status ?? "idle";
    }
    /** The error of status "error", else null. */
    get error() {
        return this.#sub?.error ?? null;
    }
    /** True once the initial state was complete. */
    get ready() {
        return this.#sub?.ready ?? false;
    }
    /**
     * Calls action name with positional args; for generated action methods.
     * Rejects with RxError("not_found") while nothing is subscribed.
     */
    callAction(name, args) {
        if (!this.#sub) {
            return Promise.reject(new RxError(ErrorCode.NotFound, `${this.channel} is not subscribed: subscribe before calling ${name}`));
        }
        return this.#sub.call(name, args);
    }
    #open() {
        const sub = this.connection.subscribe(this.channel, this.params, this.model);
        this.#sub = sub;
        sub.subscribe((state) => this.#stateListeners.emit(state));
        sub.onStatus((status, error) => this.#statusListeners.emit(status, error));
        sub.onRuntime((runtime) => this.#runtimeListeners.emit(runtime));
        sub.onPresence((users, anchor) => this.#presenceListeners.emit(users, anchor));
        this.#statusListeners.emit(sub.status, sub.error);
    }
    #close() {
        const sub = this.#sub;
        if (!sub)
            return;
        this.#sub = null;
        sub.close(); // removes our forwarding listeners first
        this.#statusListeners.emit("idle", null);
    }
}
function isConnection(c) {
    return typeof c.subscribe === "function";
}
