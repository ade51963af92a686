/** One relation field: the type of the referenced rows, and whether it is a list. */
export interface Relation {
    readonly type: string;
    readonly many: boolean;
}
/** The relation fields of one type, by JSON field name. */
export type Layer = {
    readonly [field: string]: Relation;
};
/** A channel's layer model. */
export interface ChannelModel {
    /** The type of the anchor row (the root of the state). */
    readonly anchor: string;
    /** True for list channels: the state is an array of anchor objects. */
    readonly many: boolean;
    /** Every type reachable from the anchor, with its relation fields. */
    readonly layers: {
        readonly [type: string]: Layer;
    };
    /** The types clients may write, for optimistic updates (see WriteModel). */
    readonly writes?: {
        readonly [type: string]: WriteModel;
    };
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
    readonly create?: {
        readonly [relation: string]: CreateModel;
    };
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
/** Compiles model once (cached per model object). */
export declare function compileModel(model: ChannelModel): Plan;
