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

/** One relation field: the type of the referenced rows, and whether it is a list. */
export interface Relation {
  readonly type: string;
  readonly many: boolean;
}

/** The relation fields of one type, by JSON field name. */
export type Layer = { readonly [field: string]: Relation };

/** A channel's layer model. */
export interface ChannelModel {
  /** The type of the anchor row (the root of the state). */
  readonly anchor: string;
  /** True for list channels: the state is an array of anchor objects. */
  readonly many: boolean;
  /** Every type reachable from the anchor, with its relation fields. */
  readonly layers: { readonly [type: string]: Layer };
  /** The types clients may write, for optimistic updates (see WriteModel). */
  readonly writes?: { readonly [type: string]: WriteModel };
}

/**
 * What the runtime needs to apply a client write to the local state before
 * the server confirms it: how rows of a type are keyed, and how a created
 * row is placed under its parent.
 */
export interface WriteModel {
  /** The field holding the row's key. */
  readonly key: string;
  /** How keys are encoded: temporary keys of created rows follow it (negative numbers, or "tmp:<n>"). */
  readonly idType: "number" | "string";
  /** The per-user owner field, set to the user's id in created rows. */
  readonly owner?: string;
  /** The fields of a new row before the client's are set (the Go zero value). */
  readonly template: Readonly<Record<string, unknown>>;
  /** The relations rows may be created under, by "Type.field". */
  readonly create?: { readonly [relation: string]: CreateModel };
}

/** A relation clients may create rows under. */
export interface CreateModel {
  /** The parent's type and its relation field. */
  readonly parent: string;
  readonly field: string;
  /** A list (has-many), or a single row (has-one). */
  readonly many: boolean;
  /** The created row's field that holds the parent's key. */
  readonly foreignKey?: string;
  /** New rows go first in the list (the relation is ordered descending). */
  readonly first?: boolean;
}

/** A relation of a compiled plan. */
export interface PlannedRelation {
  readonly field: string;
  readonly type: string;
  readonly many: boolean;
}

/** How to build objects of one type. */
export interface TypePlan {
  readonly relations: readonly PlannedRelation[];
  /**
   * The strongly connected component of the type in the type graph, or -1
   * when the type is on no cycle. Only for types on a cycle can an object
   * depend on where it is reached from (a reference back to an ancestor
   * stays a raw id), so only they are memoized per path.
   */
  readonly cycle: number;
}

/** A compiled ChannelModel. */
export interface Plan {
  readonly model: ChannelModel;
  type(name: string): TypePlan;
}

const NO_RELATIONS: TypePlan = { relations: [], cycle: -1 };
const plans = new WeakMap<ChannelModel, Plan>();

/** Compiles model once (cached per model object). */
export function compileModel(model: ChannelModel): Plan {
  let plan = plans.get(model);
  if (!plan) {
    plan = buildPlan(model);
    plans.set(model, plan);
  }
  return plan;
}

function buildPlan(model: ChannelModel): Plan {
  const rels = new Map<string, PlannedRelation[]>();
  for (const [type, layer] of Object.entries(model.layers)) {
    rels.set(
      type,
      Object.entries(layer).map(([field, r]) => ({ field, type: r.type, many: r.many })),
    );
  }
  const cycles = findCycles(rels);
  const types = new Map<string, TypePlan>();
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
function findCycles(rels: ReadonlyMap<string, readonly PlannedRelation[]>): Map<string, number> {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out = new Map<string, number>();
  let next = 0;
  let component = 0;

  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const r of rels.get(v) ?? []) {
      if (!index.has(r.type)) {
        visit(r.type);
        low.set(v, Math.min(low.get(v)!, low.get(r.type)!));
      } else if (onStack.has(r.type)) {
        low.set(v, Math.min(low.get(v)!, index.get(r.type)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const members: string[] = [];
    for (;;) {
      const w = stack.pop()!;
      onStack.delete(w);
      members.push(w);
      if (w === v) break;
    }
    const selfLoop = (rels.get(v) ?? []).some((r) => r.type === v);
    if (members.length > 1 || selfLoop) {
      for (const m of members) out.set(m, component);
      component++;
    }
  };
  for (const v of rels.keys()) if (!index.has(v)) visit(v);
  return out;
}
