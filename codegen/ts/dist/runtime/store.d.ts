import { type ChannelModel } from "./model.js";
import type { Instance } from "./protocol.js";
/** Fields of a flat instance. */
export type Fields = Readonly<Record<string, unknown>>;
/** The key of an instance in the index. */
export declare function instanceKey(type: string, id: string): string;
/** Where a created row goes: its parent row and the parent's relation field. */
export interface PatchParent {
    readonly type: string;
    readonly id: string;
    readonly field: string;
    readonly many: boolean;
    /** Put the new key first in the list instead of last. */
    readonly first: boolean;
}
/** An optimistic change laid over the index (see the file comment). */
export type Patch = {
    readonly op: "save";
    readonly type: string;
    readonly id: string;
    readonly fields: Fields;
} | {
    readonly op: "create";
    readonly type: string;
    readonly id: string;
    /** The temporary key as the relation field holds it (a number or a string). */
    readonly ref: unknown;
    readonly fields: Fields;
    readonly parent: PatchParent;
} | {
    readonly op: "delete";
    readonly type: string;
    readonly id: string;
};
/** The normalized index of one stream, with its last built state. */
export declare class Store {
    #private;
    /** The number of rows in the index (patches aside). */
    get size(): number;
    /** Reports whether the state shows the row (patches included). */
    has(type: string, id: string): boolean;
    /** The effective fields of a row as the state shows it (shared overlaid by own, patches included), or undefined. */
    fields(type: string, id: string): Fields | undefined;
    /** The number of pending patches. */
    get patches(): number;
    /** Lays patch p (with a unique id) over the index. */
    patch(id: number, p: Patch): void;
    /** Removes patch id: the rows it touched show the server's state again. */
    unpatch(id: number): void;
    /** Merges instances (fields and tombstones) into the index. */
    apply(instances: readonly Instance[]): void;
    /**
     * Empties the index at the start of a reset snapshot. Until settle(), a
     * row applied again with unchanged fields keeps its identity in the state.
     */
    clear(): void;
    /** Ends a reset: rows cleared and not sent again are forgotten. */
    settle(): void;
    /**
     * Builds the nested object of the row type/id with model's relations, or
     * null if the row is not in the index. Objects of rows whose subtree did
     * not change since the previous build are the same objects as then.
     */
    build(model: ChannelModel, type: string, id: string): Record<string, unknown> | null;
}
/** Deep equality of JSON values. */
export declare function jsonEqual(a: unknown, b: unknown): boolean;
