// The normalized index of one stream (a channel and one anchor) and the
// rebuild of its nested state with structural sharing.
//
// Index. Instances are kept by key = type + "\u0000" + id. An entry holds a
// shared part (the instance without owner) and the user's own overlay (the
// instance with owner: the server only sends the user's own); its effective
// fields are the shared fields overlaid by the own fields. Merging an
// instance overwrites the fields it carries; a tombstone with owner removes
// the overlay, one without owner the shared part, and an entry left with
// neither is gone.
//
// Rebuild. The object of a row is its effective fields with each relation
// field (from the layer model) replaced by the object(s) of the referenced
// rows: missing rows are skipped in lists and null for to-one, and a
// reference to a row already on the current path (a cycle) keeps the raw id.
//
// Structural sharing. Every entry has a revision that changes only when its
// effective fields change by value. A build remembers, per row, the object
// it made, the revision it made it from and the values it put in the
// relation fields. The next build reuses that object when the revision is
// the same and every relation value is identical (===), which is true
// exactly when nothing in the subtree changed; the same holds for the arrays
// of to-many relations. Unchanged subtrees therefore keep their identity, and
// a changed row gets a new object, as do its ancestors. Objects of types on a
// cycle of the model can differ by path (where the cycle is cut), so they are
// remembered per path; all others are one object per row, shared by every
// place that references the row.
//
// A reset (clear) keeps the cleared entries aside until settle(): a row
// that comes back with the same fields gets its old revision, so a full
// snapshot after a reconnect leaves unchanged parts of the state identical.
//
// Patches. Optimistic writes are patches laid over the index, never merged
// into it: a row's view is its entry with every pending patch that touches
// it applied in order (a save merges fields, a create adds a temporary row
// and appends or prepends its key to the parent's relation field, a delete
// hides the row, so that lists and to-one fields skip it as they skip any
// missing row). The server's rows keep arriving underneath. Removing a
// patch (confirmed or rolled back) leaves exactly the server's state: a
// rolled-back delete shows the row at its place again, a rolled-back create
// leaves no trace.
import { compileModel } from "./model.js";
/** The key of an instance in the index. */
export function instanceKey(type, id) {
    return type + "\u0000" + id;
}
function patchKeys(p) {
    const keys = [instanceKey(p.type, p.id)];
    if (p.op === "create")
        keys.push(instanceKey(p.parent.type, p.parent.id));
    return keys;
}
const ABSENT = Symbol("absent");
/** The normalized index of one stream, with its last built state. */
export class Store {
    #entries = new Map();
    /** Entries removed by clear(), until settle(). */
    #cleared = new Map();
    #rev = 0;
    #memo = new Map();
    #changed = true;
    #last = null;
    /** Pending patches by id, in the order they were made. */
    #patches = new Map();
    /** The views of the rows the patches touch. */
    #views = new Map();
    /** The number of rows in the index (patches aside). */
    get size() {
        return this.#entries.size;
    }
    /** Reports whether the state shows the row (patches included). */
    has(type, id) {
        return this.#row(instanceKey(type, id)) !== undefined;
    }
    /** The effective fields of a row as the state shows it (shared overlaid by own, patches included), or undefined. */
    fields(type, id) {
        return this.#row(instanceKey(type, id))?.fields;
    }
    /** The number of pending patches. */
    get patches() {
        return this.#patches.size;
    }
    /** Lays patch p (with a unique id) over the index. */
    patch(id, p) {
        this.#patches.set(id, p);
        this.#repatch(patchKeys(p));
    }
    /** Removes patch id: the rows it touched show the server's state again. */
    unpatch(id) {
        const p = this.#patches.get(id);
        if (!p)
            return;
        this.#patches.delete(id);
        this.#repatch(patchKeys(p));
    }
    #row(key) {
        const v = this.#views.get(key);
        if (v)
            return v.fields === undefined ? undefined : v;
        return this.#entries.get(key);
    }
    // #repatch recomputes the views of keys from their entries and the
    // pending patches.
    #repatch(keys) {
        for (const key of keys) {
            const base = this.#entries.get(key);
            let fields = base?.fields;
            let touched = false;
            for (const p of this.#patches.values()) {
                if (p.op === "create" && instanceKey(p.parent.type, p.parent.id) === key) {
                    touched = true;
                    if (fields)
                        fields = withChild(fields, p.parent, p.ref);
                }
                if (instanceKey(p.type, p.id) !== key)
                    continue;
                touched = true;
                if (p.op === "save") {
                    if (fields)
                        fields = { ...fields, ...p.fields };
                }
                else if (p.op === "create") {
                    fields = p.fields;
                }
                else {
                    fields = undefined;
                }
            }
            const prev = this.#views.get(key);
            if (!touched) {
                if (prev) {
                    this.#views.delete(key);
                    this.#changed = true;
                }
                continue;
            }
            if (fields === undefined && prev && prev.fields === undefined)
                continue; // still hidden
            const before = prev ?? base;
            let rev;
            if (before && before.fields !== undefined && fields !== undefined && jsonEqual(before.fields, fields))
                rev = before.rev;
            else if (base && fields !== undefined && jsonEqual(base.fields, fields))
                rev = base.rev;
            else
                rev = ++this.#rev;
            if (prev && prev.rev === rev && (prev.fields === undefined) === (fields === undefined))
                continue;
            this.#views.set(key, { fields, rev });
            this.#changed = true;
        }
    }
    /** Merges instances (fields and tombstones) into the index. */
    apply(instances) {
        for (const inst of instances)
            this.#applyOne(inst);
    }
    /**
     * Empties the index at the start of a reset snapshot. Until settle(), a
     * row applied again with unchanged fields keeps its identity in the state.
     */
    clear() {
        for (const [key, entry] of this.#entries)
            this.#cleared.set(key, entry);
        if (this.#entries.size > 0)
            this.#changed = true;
        this.#entries = new Map();
        this.#repatch([...this.#views.keys()]);
    }
    /** Ends a reset: rows cleared and not sent again are forgotten. */
    settle() {
        this.#cleared.clear();
    }
    #applyOne(inst) {
        const key = instanceKey(inst.type, String(inst.id));
        const owned = inst.owner !== undefined && inst.owner !== null && inst.owner !== "";
        let entry = this.#entries.get(key);
        if (inst.deleted) {
            if (!entry)
                return;
            if (owned) {
                if (!entry.own)
                    return;
                entry.own = undefined;
            }
            else {
                if (!entry.shared)
                    return;
                entry.shared = undefined;
            }
            if (!entry.shared && !entry.own) {
                this.#entries.delete(key);
                this.#changed = true;
                if (this.#views.has(key))
                    this.#repatch([key]);
                return;
            }
        }
        else {
            const fields = inst.fields ?? {};
            if (!entry) {
                entry = { shared: undefined, own: undefined, fields: {}, rev: -1 };
                this.#entries.set(key, entry);
            }
            if (owned)
                entry.own = { ...entry.own, ...fields };
            else
                entry.shared = { ...entry.shared, ...fields };
        }
        const effective = entry.shared && entry.own ? { ...entry.shared, ...entry.own } : (entry.shared ?? entry.own ?? {});
        if (entry.rev >= 0 && jsonEqual(effective, entry.fields)) {
            entry.fields = effective;
            return;
        }
        const old = this.#cleared.get(key);
        entry.fields = effective;
        entry.rev = old && jsonEqual(old.fields, effective) ? old.rev : ++this.#rev;
        this.#changed = true;
        if (this.#views.has(key))
            this.#repatch([key]);
    }
    /**
     * Builds the nested object of the row type/id with model's relations, or
     * null if the row is not in the index. Objects of rows whose subtree did
     * not change since the previous build are the same objects as then.
     */
    build(model, type, id) {
        const plan = compileModel(model);
        const key = instanceKey(type, id);
        const last = this.#last;
        if (!this.#changed && last && last.plan === plan && last.key === key)
            return last.obj;
        const ctx = { plan, next: new Map(), path: [], onPath: new Set() };
        const obj = this.#node(ctx, type, id)?.obj ?? null;
        if (this.#cleared.size > 0) {
            // In the middle of a reset: keep what rows not sent yet looked like.
            for (const [k, b] of this.#memo)
                if (!ctx.next.has(k))
                    ctx.next.set(k, b);
        }
        this.#memo = ctx.next;
        this.#changed = false;
        this.#last = { plan, key, obj };
        return obj;
    }
    #node(ctx, type, id) {
        const key = instanceKey(type, id);
        const entry = this.#row(key);
        if (!entry)
            return undefined;
        const tp = ctx.plan.type(type);
        let memoKey = key;
        if (tp.cycle >= 0) {
            // The object depends on which rows of its cycle are above it.
            for (const p of ctx.path)
                if (p.cycle === tp.cycle)
                    memoKey += "\u0001" + p.key;
        }
        const done = ctx.next.get(memoKey);
        if (done)
            return done;
        const prev = this.#memo.get(memoKey);
        ctx.path.push({ key, cycle: tp.cycle });
        ctx.onPath.add(key);
        const rels = [];
        for (let i = 0; i < tp.relations.length; i++) {
            const rel = tp.relations[i];
            if (!Object.prototype.hasOwnProperty.call(entry.fields, rel.field)) {
                rels.push(ABSENT);
                continue;
            }
            const raw = entry.fields[rel.field];
            const before = prev?.rels[i];
            if (rel.many) {
                const out = [];
                if (Array.isArray(raw)) {
                    for (const ref of raw) {
                        const v = this.#ref(ctx, rel.type, ref);
                        if (v !== undefined)
                            out.push(v);
                    }
                }
                rels.push(sameArray(before, out) ? before : out);
            }
            else {
                rels.push(this.#ref(ctx, rel.type, raw) ?? null);
            }
        }
        ctx.onPath.delete(key);
        ctx.path.pop();
        let built;
        if (prev && prev.rev === entry.rev && rels.every((v, i) => v === prev.rels[i])) {
            built = prev;
        }
        else {
            const obj = { ...entry.fields };
            for (let i = 0; i < tp.relations.length; i++) {
                const v = rels[i];
                if (v !== ABSENT)
                    obj[tp.relations[i].field] = v;
            }
            built = { obj, rev: entry.rev, rels };
        }
        ctx.next.set(memoKey, built);
        return built;
    }
    // #ref resolves one referenced id: the row's object, the raw id if the row
    // is on the current path, or undefined if the row is missing.
    #ref(ctx, type, ref) {
        if (ref === null || ref === undefined)
            return undefined;
        const id = String(ref);
        if (ctx.onPath.has(instanceKey(type, id)))
            return ref;
        return this.#node(ctx, type, id)?.obj;
    }
}
// withChild returns fields with ref added to the parent's relation field.
function withChild(fields, parent, ref) {
    if (!parent.many)
        return { ...fields, [parent.field]: ref };
    const raw = fields[parent.field];
    const list = Array.isArray(raw) ? raw : [];
    return { ...fields, [parent.field]: parent.first ? [ref, ...list] : [...list, ref] };
}
function sameArray(a, b) {
    if (!Array.isArray(a) || a.length !== b.length)
        return false;
    for (let i = 0; i < b.length; i++)
        if (a[i] !== b[i])
            return false;
    return true;
}
/** Deep equality of JSON values. */
export function jsonEqual(a, b) {
    if (a === b)
        return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null)
        return false;
    if (Array.isArray(a)) {
        if (!Array.isArray(b) || a.length !== b.length)
            return false;
        for (let i = 0; i < a.length; i++)
            if (!jsonEqual(a[i], b[i]))
                return false;
        return true;
    }
    if (Array.isArray(b))
        return false;
    const ak = Object.keys(a);
    if (ak.length !== Object.keys(b).length)
        return false;
    for (const k of ak) {
        if (!Object.prototype.hasOwnProperty.call(b, k))
            return false;
        if (!jsonEqual(a[k], b[k]))
            return false;
    }
    return true;
}
