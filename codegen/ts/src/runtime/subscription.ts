// One subscription to a channel over a Connection: per-anchor stores, the
// nested state, runtime state and status. Create it with
// connection.subscribe(...); the connection feeds it frames through a
// SubscriptionHandler that only it holds.

import type { Connection } from "./connection.js";
import type { RxError } from "./errors.js";
import { Listeners } from "./listeners.js";
import type { ChannelModel } from "./model.js";
import type { DeltaFrame, SnapshotFrame, SubFrame } from "./protocol.js";
import { Store } from "./store.js";

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
  delta(frame: DeltaFrame): void;
  runtime(key: string, value: unknown): void;
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

interface AnchorState {
  readonly store: Store;
  /** The version of the last complete snapshot or applied delta (undefined in the middle of a reset). */
  version: number | undefined;
  /** Whether the snapshot after the latest sub has arrived, so deltas apply. */
  synced: boolean;
}

const EMPTY: Readonly<Record<string, never>> = Object.freeze({});

/**
 * A live subscription. State is the nested anchor object for single-anchor
 * channels and the array of anchor objects (in the server's order) for list
 * channels; it is null until the first snapshot arrives. Objects in the state
 * are shared with later states where unchanged: treat them as immutable.
 */
export class Subscription<State = unknown, Runtime extends object = Record<string, unknown>> {
  /** The client-chosen id, unique on the connection. */
  readonly id: string;
  readonly channel: string;
  readonly params: unknown;
  readonly model: ChannelModel;
  readonly connection: Connection;

  readonly #anchors = new Map<string, AnchorState>();
  #order: readonly string[] | null = null;
  #state: State | null = null;
  #runtime: Partial<Runtime> = EMPTY as Partial<Runtime>;
  #status: SubscriptionStatus = "subscribing";
  #error: RxError | null = null;
  #ready = false;
  #closed = false;
  readonly #release: () => void;
  readonly #stateListeners = new Listeners<[State | null]>();
  readonly #statusListeners = new Listeners<[SubscriptionStatus, RxError | null]>();
  readonly #runtimeListeners = new Listeners<[Partial<Runtime>, string]>();

  /** Internal: use connection.subscribe(channel, params, model). */
  constructor(
    connection: Connection,
    id: string,
    channel: string,
    params: unknown,
    model: ChannelModel,
    link: SubscriptionLink,
  ) {
    this.connection = connection;
    this.id = id;
    this.channel = channel;
    this.params = params;
    this.model = model;
    this.#release = link(this.#handler());
  }

  /** The current state (see the class comment). */
  getState(): State | null {
    return this.#state;
  }

  /** Runtime state pushed by the channel, by key; a new object on each change. */
  get runtime(): Partial<Runtime> {
    return this.#runtime;
  }

  get status(): SubscriptionStatus {
    return this.#status;
  }

  /** Why the status is "error", else null. */
  get error(): RxError | null {
    return this.#error;
  }

  /** True once the initial state was complete (`done`); stays true while resuming. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Calls listener with the new state after every frame that changed it. */
  subscribe(listener: (state: State | null) => void): () => void {
    return this.#stateListeners.add(listener);
  }

  /** Calls listener when the status or error changes. */
  onStatus(listener: (status: SubscriptionStatus, error: RxError | null) => void): () => void {
    return this.#statusListeners.add(listener);
  }

  /** Calls listener with the whole runtime state and the key that changed. */
  onRuntime(listener: (runtime: Partial<Runtime>, key: string) => void): () => void {
    return this.#runtimeListeners.add(listener);
  }

  /** Calls an action of the channel instance behind this subscription. */
  call<T = unknown>(action: string, args: readonly unknown[] = []): Promise<T> {
    return this.connection.call<T>(this.id, action, args);
  }

  /** Unsubscribes; status becomes "closed". The state stays readable; listeners are removed first. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stateListeners.clear();
    this.#statusListeners.clear();
    this.#runtimeListeners.clear();
    this.#release();
    this.#setStatus("closed", null);
  }

  #setStatus(status: SubscriptionStatus, error: RxError | null): void {
    if (this.#status === status && this.#error === error) return;
    this.#status = status;
    this.#error = error;
    this.#statusListeners.emit(status, error);
  }

  #anchor(id: string): AnchorState {
    let a = this.#anchors.get(id);
    if (!a) {
      a = { store: new Store(), version: undefined, synced: false };
      this.#anchors.set(id, a);
    }
    return a;
  }

  #rebuild(): void {
    const { model } = this;
    let next: unknown;
    if (model.many) {
      if (this.#order === null) {
        next = null;
      } else {
        const list: unknown[] = [];
        for (const id of this.#order) {
          const obj = this.#anchors.get(id)?.store.build(model, model.anchor, id);
          if (obj) list.push(obj);
        }
        const prev = this.#state;
        const same =
          Array.isArray(prev) && prev.length === list.length && list.every((o, i) => o === prev[i]);
        next = same ? prev : list;
      }
    } else {
      next = null;
      for (const [id, a] of this.#anchors) next = a.store.build(model, model.anchor, id);
    }
    if (next === this.#state) return;
    this.#state = next as State | null;
    this.#stateListeners.emit(this.#state);
  }

  #handler(): SubscriptionHandler {
    return {
      subFrame: () => {
        const since: Record<string, number> = {};
        let resume = false;
        for (const [id, a] of this.#anchors) {
          a.synced = false;
          if (a.version !== undefined) {
            since[id] = a.version;
            resume = true;
          }
        }
        this.#setStatus("subscribing", null);
        const frame: SubFrame = { type: "sub", id: this.id, channel: this.channel, params: this.params };
        return resume ? { ...frame, since } : frame;
      },

      snapshot: (f) => {
        if (!this.model.many) {
          // One anchor per single-anchor subscription.
          for (const id of this.#anchors.keys()) if (id !== f.anchor) this.#anchors.delete(id);
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
        this.#rebuild();
      },

      done: () => {
        this.#ready = true;
        this.#setStatus("ready", null);
      },

      anchors: (ids) => {
        const order = ids.map(String);
        const keep = new Set(order);
        for (const id of this.#anchors.keys()) if (!keep.has(id)) this.#anchors.delete(id);
        this.#order = order;
        this.#rebuild();
      },

      delta: (f) => {
        const a = this.#anchors.get(f.anchor);
        // Deltas apply only on top of this subscription's snapshot, once:
        // a delta at or below the version held (a duplicate after a resume,
        // or one meant for another subscription of the stream that arrived
        // before ours was registered) is ignored.
        if (!a || !a.synced || a.version === undefined || !(f.version > a.version)) return;
        a.store.apply(f.instances ?? []);
        a.version = f.version;
        this.#rebuild();
      },

      runtime: (key, value) => {
        this.#runtime = { ...this.#runtime, [key]: value };
        this.#runtimeListeners.emit(this.#runtime, key);
      },

      ended: (err) => this.#setStatus("error", err),

      disconnected: () => {
        if (this.#status !== "error" && this.#status !== "closed") this.#setStatus("reconnecting", null);
      },

      stopped: (err) => this.#setStatus(err ? "error" : "closed", err),
    };
  }
}
