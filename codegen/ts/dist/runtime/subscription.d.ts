import type { Connection } from "./connection.js";
import { RxError } from "./errors.js";
import type { ChannelModel } from "./model.js";
import type { DeltaFrame, Present, SnapshotFrame, SubFrame } from "./protocol.js";
/**
 * The life of a subscription:
 * - "idle": not subscribed (only a ContextChannel without listeners reports it);
 * - "subscribing": the sub was sent, or will be once the socket is open; the
 *   state so far (if any) stays readable;
 * - "ready": the initial state is complete (`done`) and deltas apply live;
 * - "reconnecting": the socket was lost; it resubscribes with `since`;
 * - "error": the server ended the subscription, or the connection stopped
 *   with an error (see `error`);
 * - "closed": closed by the client, or the connection closed normally.
 */
export type SubscriptionStatus = "idle" | "subscribing" | "ready" | "reconnecting" | "error" | "closed";
/** How the connection drives a subscription (internal to the runtime). */
export interface SubscriptionHandler {
    /** The sub frame to send, carrying `since`; deltas wait for the snapshot again. */
    subFrame(): SubFrame;
    snapshot(frame: SnapshotFrame): void;
    done(): void;
    anchors(ids: readonly string[]): void;
    /**
     * Applies a delta; false when it shows that changes were missed (its
     * `from` is above the version held): the connection then resubscribes
     * with `since`.
     */
    delta(frame: DeltaFrame): boolean;
    runtime(key: string, value: unknown): void;
    /** Who is present in an anchor's stream. */
    presence(anchor: string, users: readonly Present[]): void;
    /** The server ended the subscription with err. */
    ended(err: RxError): void;
    /** The socket was lost; the connection will resubscribe. */
    disconnected(): void;
    /** The connection stopped: with an error, or normally (null). */
    stopped(err: RxError | null): void;
}
/**
 * Registers a subscription's handler with its connection and returns the
 * function that releases it (sending unsub when the socket is open).
 */
export type SubscriptionLink = (handler: SubscriptionHandler) => () => void;
/**
 * A client write, as Subscription.write takes it: save fields of a row,
 * create a row under a parent's relation ("Type.field"), delete a row.
 */
export type WriteRequest = {
    readonly op: "save";
    readonly layer: string;
    readonly row: string | number;
    readonly fields: Readonly<Record<string, unknown>>;
} | {
    readonly op: "create";
    readonly layer: string;
    readonly relation: string;
    readonly parent: string | number;
    readonly fields: Readonly<Record<string, unknown>>;
} | {
    readonly op: "delete";
    readonly layer: string;
    readonly row: string | number;
};
/**
 * A live subscription. State is the nested anchor object for single-anchor
 * channels and the array of anchor objects (in the server's order) for list
 * channels; it is null until the first snapshot arrives. Objects in the state
 * are shared with later states where unchanged: treat them as immutable.
 */
export declare class Subscription<State = unknown, Runtime extends object = Record<string, unknown>> {
    #private;
    /** The client-chosen id, unique on the connection. */
    readonly id: string;
    readonly channel: string;
    readonly params: unknown;
    readonly model: ChannelModel;
    readonly connection: Connection;
    /** Internal: use connection.subscribe(channel, params, model). */
    constructor(connection: Connection, id: string, channel: string, params: unknown, model: ChannelModel, link: SubscriptionLink);
    /** The current state (see the class comment). */
    getState(): State | null;
    /** Runtime state pushed by the channel, by key; a new object on each change. */
    get runtime(): Partial<Runtime>;
    get status(): SubscriptionStatus;
    /** Why the status is "error", else null. */
    get error(): RxError | null;
    /** True once the initial state was complete (`done`); stays true while resuming. */
    get ready(): boolean;
    /** Calls listener with the new state after every frame that changed it. */
    subscribe(listener: (state: State | null) => void): () => void;
    /** Calls listener when the status or error changes. */
    onStatus(listener: (status: SubscriptionStatus, error: RxError | null) => void): () => void;
    /** Calls listener with the whole runtime state and the key that changed. */
    onRuntime(listener: (runtime: Partial<Runtime>, key: string) => void): () => void;
    /** Who is present in the stream of a single-anchor subscription (empty for list channels: see presenceOf). */
    get presence(): readonly Present[];
    /** Who is present in the stream of one anchor. */
    presenceOf(anchor: string): readonly Present[];
    /** Calls listener with an anchor's presence list and the anchor each time it changes. */
    onPresence(listener: (users: readonly Present[], anchor: string) => void): () => void;
    /** Calls an action of the channel instance behind this subscription. */
    call<T = unknown>(action: string, args?: readonly unknown[]): Promise<T>;
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
    write(req: WriteRequest): Promise<string>;
    /** Unsubscribes; status becomes "closed". The state stays readable; listeners are removed first. */
    close(): void;
}
