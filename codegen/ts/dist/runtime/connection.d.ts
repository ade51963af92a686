import { RxError } from "./errors.js";
import type { ChannelModel } from "./model.js";
import { type WriteFrame } from "./protocol.js";
import { Subscription } from "./subscription.js";
/**
 * The state of a connection:
 * - "idle": no socket, nobody subscribed;
 * - "connecting": the first socket is opening (until welcome);
 * - "open": welcomed, subscriptions are live;
 * - "reconnecting": the socket was lost; waiting for the backoff or opening again;
 * - "closed": stopped by the server (1000, 1008, 1009, 4002) or for lack of a WebSocket;
 * - "unauthenticated": stopped by 4001, the token was refused.
 */
export type ConnectionStatus = "idle" | "connecting" | "open" | "reconnecting" | "closed" | "unauthenticated";
/**
 * The part of a WebSocket the runtime uses: the browser's WebSocket and the
 * `ws` package's both fit. Event handlers take `never` so that either's
 * event types are accepted.
 */
export interface WebSocketLike {
    readonly readyState: number;
    send(data: string): void;
    close(code?: number, reason?: string): void;
    onopen: ((event: never) => void) | null;
    onmessage: ((event: never) => void) | null;
    onclose: ((event: never) => void) | null;
    onerror: ((event: never) => void) | null;
}
/** A WebSocket constructor (globalThis.WebSocket by default). */
export type WebSocketConstructor = new (url: string) => WebSocketLike;
/** Options of a connection; every field may be left out. */
export interface ConnectOptions {
    /** Sent in hello; absent for anonymous users or cookie authentication. */
    token?: string | undefined;
    /** The WebSocket implementation; default globalThis.WebSocket. */
    WebSocket?: WebSocketConstructor | undefined;
    /** First reconnect delay bound in ms; default 100. */
    backoffBase?: number | undefined;
    /** Largest reconnect delay bound in ms; default 10000. */
    backoffMax?: number | undefined;
    /** How long the socket stays open without subscriptions, in ms; default 100. */
    idleTimeout?: number | undefined;
}
/** Where and how to connect: what a ContextChannel accepts instead of a Connection. */
export interface ConnectionOptions extends ConnectOptions {
    url: string;
}
/**
 * The delay before reconnect attempt `attempt` (0 for the first): "full
 * jitter", uniformly random in [0, min(max, base * 2^attempt)).
 */
export declare function backoffDelay(attempt: number, base: number, max: number, random?: () => number): number;
/** A write frame before the connection gives it its id and subscription. */
export type WriteRequestFrame = WriteFrame extends infer F ? (F extends WriteFrame ? Omit<F, "id" | "sub"> : never) : never;
/** A multiplexed connection to an rxgorm server. */
export declare class Connection {
    #private;
    /**
     * The shared connection for url and token: every caller with the same
     * pair gets the same object (the other options of the first call win).
     */
    static get(url: string, options?: ConnectOptions): Connection;
    readonly url: string;
    readonly token: string | undefined;
    /** A connection of its own; prefer Connection.get, which shares one per url and token. */
    constructor(url: string, options?: ConnectOptions);
    get status(): ConnectionStatus;
    /** Why the connection stopped ("closed" or "unauthenticated"), else null. */
    get error(): RxError | null;
    /** The user id of the last welcome ("" for anonymous), null before any. */
    get user(): string | null;
    /** Calls listener when the status changes. */
    onStatus(listener: (status: ConnectionStatus, error: RxError | null) => void): () => void;
    /** Calls listener with the message of each system broadcast. */
    onSystem(listener: (message: unknown) => void): () => void;
    /** Calls listener with errors tied to no call or subscription (a refused hello, a frame the server could not use). */
    onError(listener: (error: RxError) => void): () => void;
    /**
     * Subscribes to channel with params; model tells how to nest its state.
     * The first subscription opens the socket. Close the subscription to
     * release it.
     */
    subscribe<State = unknown, Runtime extends object = Record<string, unknown>>(channel: string, params: unknown, model: ChannelModel): Subscription<State, Runtime>;
    /**
     * Calls action on the channel instance of subscription subId. It resolves
     * with the result's value and rejects with an RxError carrying the
     * server's code.
     */
    call<T = unknown>(subId: string, action: string, args?: readonly unknown[]): Promise<T>;
    /**
     * Sends a client write (save, create or delete) for subscription subId.
     * It resolves with the result's value ({row: id}) and rejects like call.
     * Subscription.write applies it optimistically first.
     */
    write<T = unknown>(subId: string, frame: WriteRequestFrame): Promise<T>;
    /**
     * Connects again now: after a stop (for example once the server accepts
     * the token again), or to skip the rest of a backoff delay.
     */
    reconnect(): void;
    /**
     * Closes the socket and ends every subscription (status "closed"); pending
     * calls reject. The connection returns to "idle" and connects again for the
     * next subscription.
     */
    close(): void;
}
