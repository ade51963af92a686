// One subscription to a channel over a Connection: per-anchor stores, the
// nested state, runtime state and status. Create it with
// connection.subscribe(...); the connection feeds it frames through a
// SubscriptionHandler that only it holds.
import { ErrorCode } from "./codes.js";
import { RxError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { Store } from "./store.js";
const EMPTY = Object.freeze({});
const NOBODY = Object.freeze([]);
/**
 * The longest a delta waits for writes in flight to settle before it is
 * shown anyway (see write); a safeguard, writes normally settle in a round
 * trip.
 */
const HOLD_LIMIT_MS = 5000;
let writes = 0;
let temps = 0;
/**
 * A live subscription. State is the nested anchor object for single-anchor
 * channels and the array of anchor objects (in the server's order) for list
 * channels; it is null until the first snapshot arrives. Objects in the state
 * are shared with later states where unchanged: treat them as immutable.
 */
export class Subscription {
    /** The client-chosen id, unique on the connection. */
    id;
    channel;
    params;
    model;
    connection;
    #anchors = new Map();
    #order = null;
    #state = null;
    #runtime = EMPTY;
    #status = "subscribing";
    #error = null;
    #ready = false;
    #closed = false;
    #release;
    #stateListeners = new Listeners();
    #statusListeners = new Listeners();
    #runtimeListeners = new Listeners();
    #presence = new Map();
    #presenceListeners = new Listeners();
    /** Writes sent and not answered yet. */
    #inflight = new Set();
    /** Keys ("Type\u0000id") of rows created optimistically and not confirmed. */
    #temps = new Set();
    /** While set, rebuilds wait for these writes to settle (see write). */
    #hold = null;
    #holdTimer = null;
    /** A rebuild was skipped during a hold. */
    #stale = false;
    /** Internal: use connection.subscribe(channel, params, model). */
    constructor(connection, id, channel, params, model, link) {
        this.connection = connection;
        this.id = id;
        this.channel = channel;
        this.params = params;
        this.model = model;
        this.#release = link(this.#handler());
    }
    /** The current state (see the class comment). */
    getState() {
        return this.#state;
    }
    /** Runtime state pushed by the channel, by key; a new object on each change. */
    get runtime() {
        return this.#runtime;
    }
    get status() {
        return this.#status;
    }
    /** Why the status is "error", else null. */
    get error() {
        return this.#error;
    }
    /** True once the initial state was complete (`done`); stays true while resuming. */
    get ready() {
        return this.#ready;
    }
    /** Calls listener with the new state after every frame that changed it. */
    subscribe(listener) {
        return this.#stateListeners.add(listener);
    }
    /** Calls listener when the status or error changes. */
    onStatus(listener) {
        return this.#statusListeners.add(listener);
    }
    /** Calls listener with the whole runtime state and the key that changed. */
    onRuntime(listener) {
        return this.#runtimeListeners.add(listener);
    }
    /** Who is present in the stream of a single-anchor subscription (empty for list channels: see presenceOf). */
    get presence() {
        if (this.model.many)
            return NOBODY;
        for (const users of this.#presence.values())
            return users;
        return NOBODY;
    }
    /** Who is present in the stream of one anchor. */
    presenceOf(anchor) {
        return this.#presence.get(anchor) ?? NOBODY;
    }
    /** Calls listener with an anchor's presence list and the anchor each time it changes. */
    onPresence(listener) {
        return this.#presenceListeners.add(listener);
    }
    /** Calls an action of the channel instance behind this subscription. */
    call(action, args = []) {
        return this.connection.call(this.id, action, args);
    }
    /**
     * Sends a client write and applies it to the state at once (when the
     * model declares the type writable): a save shows its fields, a create a
     * temporary row (a negative key, or "tmp:<n>" for string keys) under its
     * parent, a delete hides the row. The promise resolves with the row's id
     * from the server (the new id for a create) and rejects with the
     * server's RxError.
     *
     * Either way the optimistic change is then removed, leaving the server's
     * state: the server sends a write's delta before its reply, so on
     * success the state has the real row, and on failure it is exactly what
     * it was without the write. A delta that arrives while writes are in
     * flight is applied at once but shown only when those writes have
     * settled, so a confirmation swaps the temporary row for the real one in
     * one step, never showing both.
     */
    write(req) {
        const op = ++writes;
        const patch = this.#patchFor(req);
        if (patch instanceof RxError)
            return Promise.reject(patch);
        const patched = [];
        if (patch) {
            const target = patch.op === "create" ? patch.parent : patch;
            for (const a of this.#anchors.values()) {
                if (a.store.has(target.type, target.id)) {
                    a.store.patch(op, patch);
                    patched.push(a.store);
                }
            }
            if (patch.op === "create")
                this.#temps.add(patch.type + "\u0000" + patch.id);
        }
        this.#inflight.add(op);
        if (patched.length > 0)
            this.#refresh();
        const frame = req.op === "save"
            ? { type: "save", layer: req.layer, row: String(req.row), fields: req.fields }
            : req.op === "create"
                ? { type: "create", layer: req.layer, relation: req.relation, parent: String(req.parent), fields: req.fields }
                : { type: "delete", layer: req.layer, row: String(req.row) };
        const settle = () => {
            for (const st of patched)
                st.unpatch(op);
            if (patch?.op === "create")
                this.#temps.delete(patch.type + "\u0000" + patch.id);
            this.#inflight.delete(op);
            if (this.#hold) {
                this.#hold.delete(op);
                if (this.#hold.size === 0)
                    this.#releaseHold();
                else if (patched.length > 0)
                    this.#stale = true;
                return;
            }
            if (patched.length > 0)
                this.#rebuild();
        };
        return this.connection.write(this.id, frame).then((v) => {
            settle();
            return String(v?.row ?? "");
        }, (err) => {
            settle();
            throw err;
        });
    }
    // #patchFor makes the optimistic patch of a write, null when the model
    // does not describe the type, or an error for a write that cannot be
    // sent.
    #patchFor(req) {
        const wm = this.model.writes?.[req.layer];
        if (req.op !== "create") {
            const id = String(req.row);
            if (this.#temps.has(req.layer + "\u0000" + id)) {
                return new RxError(ErrorCode.BadRequest, `${req.layer} ${id} is not created yet: wait for its create to resolve`);
            }
            if (!wm)
                return null;
            return req.op === "save"
                ? { op: "save", type: req.layer, id, fields: req.fields }
                : { op: "delete", type: req.layer, id };
        }
        const c = wm?.create?.[req.relation];
        if (!wm || !c)
            return null;
        const n = ++temps;
        const ref = wm.idType === "number" ? -n : `tmp:${n}`;
        const fields = { ...wm.template, ...req.fields, [wm.key]: ref };
        const like = (field, v) => (typeof wm.template[field] === "number" ? Number(v) : String(v));
        if (c.foreignKey)
            fields[c.foreignKey] = like(c.foreignKey, req.parent);
        if (wm.owner && this.connection.user)
            fields[wm.owner] = like(wm.owner, this.connection.user);
        return {
            op: "create",
            type: req.layer,
            id: String(ref),
            ref,
            fields,
            parent: { type: c.parent, id: String(req.parent), field: c.field, many: c.many, first: c.first ?? false },
        };
    }
    // #refresh rebuilds the state, or marks it stale during a hold.
    #refresh() {
        if (this.#hold)
            this.#stale = true;
        else
            this.#rebuild();
    }
    #releaseHold() {
        if (this.#holdTimer !== null)
            clearTimeout(this.#holdTimer);
        this.#holdTimer = null;
        this.#hold = null;
        if (this.#stale) {
            this.#stale = false;
            this.#rebuild();
        }
    }
    /** Unsubscribes; status becomes "closed". The state stays readable; listeners are removed first. */
    close() {
        if (this.#closed)
            return;
        this.#closed = true;
        this.#stateListeners.clear();
        this.#statusListeners.clear();
        this.#runtimeListeners.clear();
        this.#presenceListeners.clear();
        if (this.#holdTimer !== null)
            clearTimeout(this.#holdTimer);
        this.#holdTimer = null;
        this.#release();
        this.#setStatus("closed", null);
    }
    #setStatus(status, error) {
        if (this.#status === status && this.#error === error)
            return;
        this.#status = status;
        this.#error = error;
        this.#statusListeners.emit(status, error);
    }
    #anchor(id) {
        let a = this.#anchors.get(id);
        if (!a) {
            a = { store: new Store(), version: undefined, synced: false };
            this.#anchors.set(id, a);
        }
        return a;
    }
    #rebuild() {
        const { model } = this;
        let next;
        if (model.many) {
            if (this.#order === null) {
                next = null;
            }
            else {
                const list = [];
                for (const id of this.#order) {
                    const obj = this.#anchors.get(id)?.store.build(model, model.anchor, id);
                    if (obj)
                        list.push(obj);
                }
                const prev = this.#state;
                const same = Array.isArray(prev) && prev.length === list.length && list.every((o, i) => o === prev[i]);
                next = same ? prev : list;
            }
        }
        else {
            next = null;
            for (const [id, a] of this.#anchors)
                next = a.store.build(model, model.anchor, id);
        }
        if (next === this.#state)
            return;
        this.#state = next;
        this.#stateListeners.emit(this.#state);
    }
    #handler() {
        return {
            subFrame: () => {
                const since = {};
                let resume = false;
                for (const [id, a] of this.#anchors) {
                    a.synced = false;
                    if (a.version !== undefined) {
                        since[id] = a.version;
                        resume = true;
                    }
                }
                this.#setStatus("subscribing", null);
                const frame = { type: "sub", id: this.id, channel: this.channel, params: this.params };
                return resume ? { ...frame, since } : frame;
            },
            snapshot: (f) => {
                if (!this.model.many) {
                    // One anchor per single-anchor subscription.
                    for (const id of this.#anchors.keys())
                        if (id !== f.anchor)
                            this.#anchors.delete(id);
                    for (const id of this.#presence.keys())
                        if (id !== f.anchor)
                            this.#presence.delete(id);
                }
                const a = this.#anchor(f.anchor);
                if (f.reset) {
                    a.store.clear();
                    a.version = undefined; // a partial reset cannot be resumed
                }
                a.store.apply(f.instances ?? []);
                if (!f.more) {
                    a.store.settle();
                    a.version = f.version;
                    a.synced = true;
                }
                this.#refresh();
            },
            done: () => {
                this.#ready = true;
                this.#setStatus("ready", null);
            },
            anchors: (ids) => {
                const order = ids.map(String);
                const keep = new Set(order);
                for (const id of this.#anchors.keys())
                    if (!keep.has(id))
                        this.#anchors.delete(id);
                for (const id of this.#presence.keys())
                    if (!keep.has(id))
                        this.#presence.delete(id);
                this.#order = order;
                this.#refresh();
            },
            delta: (f) => {
                const a = this.#anchors.get(f.anchor);
                // Deltas apply only on top of this subscription's snapshot, once:
                // a delta at or below the version held (a duplicate after a resume,
                // or one meant for another subscription of the stream that arrived
                // before ours was registered) is ignored.
                if (!a || !a.synced || a.version === undefined || !(f.version > a.version))
                    return true;
                // A delta applies to the version `from`: above ours, changes were
                // missed (a broker outage between servers). Resume from ours.
                if (typeof f.from === "number" && f.from > a.version)
                    return false;
                a.store.apply(f.instances ?? []);
                a.version = f.version;
                if (this.#inflight.size > 0 && !this.#hold) {
                    // Possibly a write's own delta: show it with the write's reply.
                    this.#hold = new Set(this.#inflight);
                    this.#holdTimer = setTimeout(() => this.#releaseHold(), HOLD_LIMIT_MS);
                }
                this.#refresh();
                return true;
            },
            runtime: (key, value) => {
                this.#runtime = { ...this.#runtime, [key]: value };
                this.#runtimeListeners.emit(this.#runtime, key);
            },
            presence: (anchor, users) => {
                const list = Object.freeze([...users]);
                this.#presence.set(anchor, list);
                this.#presenceListeners.emit(list, anchor);
            },
            ended: (err) => this.#setStatus("error", err),
            disconnected: () => {
                if (this.#status !== "error" && this.#status !== "closed")
                    this.#setStatus("reconnecting", null);
            },
            stopped: (err) => this.#setStatus(err ? "error" : "closed", err),
        };
    }
}
