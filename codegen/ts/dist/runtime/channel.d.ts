import { Connection, type ConnectionOptions } from "./connection.js";
import { RxError } from "./errors.js";
import type { ChannelModel } from "./model.js";
import type { Present } from "./protocol.js";
import type { SubscriptionStatus } from "./subscription.js";
/**
 * The client writes of a channel, by kind: for save, the writable fields
 * and key type of each type; for create, per relation ("Type.field"), the
 * parent's key type, the fields a new row may set and its key type; for
 * delete, the key type of each type.
 */
export interface Writes {
    readonly save: {
        readonly [type: string]: {
            readonly key: string | number;
            readonly fields: object;
        };
    };
    readonly create: {
        readonly [relation: string]: {
            readonly parent: string | number;
            readonly key: string | number;
            readonly fields: object;
        };
    };
    readonly delete: {
        readonly [type: string]: {
            readonly key: string | number;
        };
    };
}
/** The Writes of a channel that allows none. */
export interface NoWrites {
    readonly save: Record<never, never>;
    readonly create: Record<never, never>;
    readonly delete: Record<never, never>;
}
/** A typed channel over a (shared) connection; see the file comment. */
export declare abstract class ContextChannel<State, Params = unknown, Runtime extends object = Record<string, never>, W extends Writes = NoWrites> {
    #private;
    /** The channel's registered name. */
    abstract readonly channel: string;
    /** True for list channels. */
    abstract readonly many: boolean;
    /** The layer model that nests the state. */
    abstract readonly model: ChannelModel;
    readonly connection: Connection;
    readonly params: Params;
    /**
     * conn is a Connection, or the url and token (plus options) of the shared
     * connection to use (Connection.get).
     */
    constructor(conn: Connection | ConnectionOptions, params: Params);
    /**
     * Calls listener with the new state after each change. The first listener
     * subscribes on the socket, and removing the last one unsubscribes.
     */
    subscribe(listener: (state: State | null) => void): () => void;
    /** Calls listener when status or error change. */
    onStatus(listener: (status: SubscriptionStatus, error: RxError | null) => void): () => void;
    /** Calls listener when the runtime state changes. */
    onRuntime(listener: (runtime: Partial<Runtime>) => void): () => void;
    /** Calls listener with an anchor's presence list (and the anchor) when it changes. */
    onPresence(listener: (users: readonly Present[], anchor: string) => void): () => void;
    /**
     * Who is connected to the channel's stream (single-anchor channels that
     * track presence): user ids and their subscription counts, over every
     * server node; empty without subscription.
     */
    get presence(): readonly Present[];
    /** Who is connected to the stream of one anchor (list channels). */
    presenceOf(anchor: string | number): readonly Present[];
    /**
     * Saves fields of a row, showing them at once; resolves when the server
     * committed the write, rejects with its RxError (the state then is as if
     * the write had not been made).
     */
    save<T extends keyof W["save"] & string>(type: T, id: W["save"][T]["key"], fields: W["save"][T]["fields"]): Promise<void>;
    /**
     * Creates a row under a parent's relation ("Type.field"), showing a
     * temporary row at once; resolves with the new row's key once the server
     * committed it (the real row has replaced the temporary one in the
     * state), rejects with the server's RxError (the temporary row is gone).
     */
    create<R extends keyof W["create"] & string>(relation: R, parent: W["create"][R]["parent"], fields: W["create"][R]["fields"]): Promise<W["create"][R]["key"]>;
    /**
     * Deletes a row, hiding it at once; rejects with the server's RxError,
     * the row then back in its place.
     */
    delete<T extends keyof W["delete"] & string>(type: T, id: W["delete"][T]["key"]): Promise<void>;
    /** The state: null before the first snapshot or without subscription. */
    getState(): State | null;
    /** The runtime state pushed by the channel so far ({} without subscription). */
    getRuntime(): Partial<Runtime>;
    /** "idle" without subscription, else the subscription's status. */
    get status(): SubscriptionStatus;
    /** The error of status "error", else null. */
    get error(): RxError | null;
    /** True once the initial state was complete. */
    get ready(): boolean;
    /**
     * Calls action name with positional args; for generated action methods.
     * Rejects with RxError("not_found") while nothing is subscribed.
     */
    protected callAction<T>(name: string, args: readonly unknown[]): Promise<T>;
}
