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
// when it has none).
//
// The subclass's fields are set after this constructor runs, so the
// constructor reads none of them: the subscription is made lazily by the
// first subscribe(). It ends when the last state listener leaves; status
// and runtime listeners alone do not hold it.

import { Connection, type ConnectionOptions } from "./connection.js";
import { ErrorCode } from "./codes.js";
import { RxError } from "./errors.js";
import { Listeners } from "./listeners.js";
import type { ChannelModel } from "./model.js";
import type { Subscription, SubscriptionStatus } from "./subscription.js";

const EMPTY: Readonly<Record<string, never>> = Object.freeze({});

/** A typed channel over a (shared) connection; see the file comment. */
export abstract class ContextChannel<State, Params = unknown, Runtime extends object = Record<string, never>> {
  /** The channel's registered name. */
  abstract readonly channel: string;
  /** True for list channels. */
  abstract readonly many: boolean;
  /** The layer model that nests the state. */
  abstract readonly model: ChannelModel;

  readonly connection: Connection;
  readonly params: Params;

  #sub: Subscription<State, Runtime> | null = null;
  readonly #stateListeners = new Listeners<[State | null]>();
  readonly #statusListeners = new Listeners<[SubscriptionStatus, RxError | null]>();
  readonly #runtimeListeners = new Listeners<[Partial<Runtime>]>();

  /**
   * conn is a Connection, or the url and token (plus options) of the shared
   * connection to use (Connection.get).
   */
  constructor(conn: Connection | ConnectionOptions, params: Params) {
    this.connection = isConnection(conn) ? conn : Connection.get(conn.url, conn);
    this.params = params;
  }

  /**
   * Calls listener with the new state after each change. The first listener
   * subscribes on the socket, and removing the last one unsubscribes.
   */
  subscribe(listener: (state: State | null) => void): () => void {
    const off = this.#stateListeners.add(listener);
    if (!this.#sub) this.#open();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      off();
      if (this.#stateListeners.size === 0) this.#close();
    };
  }

  /** Calls listener when status or error change. */
  onStatus(listener: (status: SubscriptionStatus, error: RxError | null) => void): () => void {
    return this.#statusListeners.add(listener);
  }

  /** Calls listener when the runtime state changes. */
  onRuntime(listener: (runtime: Partial<Runtime>) => void): () => void {
    return this.#runtimeListeners.add(listener);
  }

  /** The state: null before the first snapshot or without subscription. */
  getState(): State | null {
    return this.#sub?.getState() ?? null;
  }

  /** The runtime state pushed by the channel so far ({} without subscription). */
  getRuntime(): Partial<Runtime> {
    return this.#sub?.runtime ?? (EMPTY as Partial<Runtime>);
  }

  /** "idle" without subscription, else the subscription's status. */
  get status(): SubscriptionStatus {
    return this.#sub?.status ?? "idle";
  }

  /** The error of status "error", else null. */
  get error(): RxError | null {
    return this.#sub?.error ?? null;
  }

  /** True once the initial state was complete. */
  get ready(): boolean {
    return this.#sub?.ready ?? false;
  }

  /**
   * Calls action name with positional args; for generated action methods.
   * Rejects with RxError("not_found") while nothing is subscribed.
   */
  protected callAction<T>(name: string, args: readonly unknown[]): Promise<T> {
    if (!this.#sub) {
      return Promise.reject(
        new RxError(ErrorCode.NotFound, `${this.channel} is not subscribed: subscribe before calling ${name}`),
      );
    }
    return this.#sub.call<T>(name, args);
  }

  #open(): void {
    const sub = this.connection.subscribe<State, Runtime>(this.channel, this.params, this.model);
    this.#sub = sub;
    sub.subscribe((state) => this.#stateListeners.emit(state));
    sub.onStatus((status, error) => this.#statusListeners.emit(status, error));
    sub.onRuntime((runtime) => this.#runtimeListeners.emit(runtime));
    this.#statusListeners.emit(sub.status, sub.error);
  }

  #close(): void {
    const sub = this.#sub;
    if (!sub) return;
    this.#sub = null;
    sub.close(); // removes our forwarding listeners first
    this.#statusListeners.emit("idle", null);
  }
}

function isConnection(c: Connection | ConnectionOptions): c is Connection {
  return typeof (c as Partial<Connection>).subscribe === "function";
}
