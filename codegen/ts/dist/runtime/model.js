// The layer model of a channel: which fields of which type are relations,
// so that flat instances can be nested again. The Go generator emits one
// per channel, for example:
//
//   const MODEL = {
//     anchor: "Chat",
//     many: false,
//     layers: {
//       Chat: { members: { type: "User", many: true }, messages: { type: "Message", many: true } },
//       Message: { sender: { type: "User", many: false } },
//       User: {},
//     },
//   } as const satisfies ChannelModel;
//
// Only relation fields appear in a layer; every other field is copied as is.
// A relation's value in a flat instance is an id (to-one, or null) or a list
// of ids (to-many); ids may be JSON numbers or strings and are looked up by
// String(id). A relation whose rows are never sent (rx:"ids") must be left
// out of the model so that its ids stay plain values.
const NO_RELATIONS = { relations: [], cycle: -1 };
const plans = new WeakMap();
/** Compiles model once (cached per model object). */
export function compileModel(model) {
    let plan = plans.get(model);
    if (!plan) {
        plan = buildPlan(model);
        plans.set(model, plan);
    }
    return plan;
}
function buildPlan(model) {
    const rels = new Map();
    for (const [type, layer] of Object.entries(model.layers)) {
        rels.set(type, Object.entries(layer).map(([field, r]) => ({ field, type: r.type, many: r.many })));
    }
    const cycles = findCycles(rels);
    const types = new Map();
    for (const [type, relations] of rels) {
        types.set(type, { relations, cycle: cycles.get(type) ?? -1 });
    }
    return {
        model,
        type: (name) => types.get(name) ?? NO_RELATIONS,
    };
}
// findCycles returns, for every type on a cycle of the type graph, the
// number of its strongly connected component (Tarjan's algorithm).
function findCycles(rels) {
    const index = new Map();
    const low = new Map();
    const onStack = new Set();
    const stack = [];
    const out = new Map();
    let next = 0;
    let component = 0;
    const visit = (v) => {
        index.set(v, next);
        low.set(v, next);
        next++;
        stack.push(v);
        onStack.add(v);
        for (const r of rels.get(v) ?? []) {
            if (!index.has(r.type)) {
                visit(r.type);
                low.set(v, Math.min(low.get(v), low.get(r.type)));
            }
            else if (onStack.has(r.type)) {
                low.set(v, Math.min(low.get(v), index.get(r.type)));
            }
        }
        if (low.get(v) !== index.get(v))
            return;
        const members = [];
        for (;;) {
            const w = stack.pop();
            onStack.delete(w);
            members.push(w);
            if (w === v)
                break;
        }
        const selfLoop = (rels.get(v) ?? []).some((r) => r.type === v);
        if (members.length > 1 || selfLoop) {
            for (const m of members)
                out.set(m, component);
            component++;
        }
    };
    for (const v of rels.keys())
        if (!index.has(v))
            visit(v);
    return out;
}
