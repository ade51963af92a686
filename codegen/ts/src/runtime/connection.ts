// One WebSocket carrying every subscription and action call of a URL and
// token (docs/PROTOCOL.md).
//
// Life cycle. The socket opens with the first subscription (hello, then
// welcome) and closes with code 1000 a short grace delay (idleTimeout) after
// the last one is released, so that resubscribing at once reuses it. On an
// unexpected close (1001 server shutdown, 4008 slow client, 1006 network
// loss, any other code) it reconnects with exponential backoff and full
// jitter and resubscribes every live subscription with `since` = the last
// version it holds per anchor. It stops instead on 4001 (status
// "unauthenticated"), on 4002, 1008 and 1009 (status "closed" with an
// error) and on a normal close by the server, 1000 (status "closed", no
// error). A stopped connection stays stopped until reconnect() is called or
// every subscription is released (it then returns to "idle", and the next
// subscription connects again).
//
// Calls (and writes, which are answered the same way). A call made before
// the socket is ready waits for it and is sent after the subscriptions; a
// call already sent when the socket closes rejects with
// RxError("internal", "connection lost"), as nobody can know whether it
// ran. A call larger than the server's read limit (welcome's maxMessage)
// rejects with "bad_request" instead of being sent, since the server would
// answer it by closing the socket with 1009.
//
// Frames. The hello always carries `batch: true`: the server may then put
// several messages in one text frame, separated by "\n" (JSON never holds a
// raw newline). Each part is handled in order as if it had come in a frame
// of its own: a part that is not a message is ignored, one whose handling
// throws is reported (as an event listener's exception is) and the parts
// after it are still handled, unless the socket was dropped meanwhile.

import { CloseCode, ErrorCode, PROTOCOL_VERSION } from "./codes.js";
import { RxError } from "./errors.js";
import { Listeners, report } from "./listeners.js";
import type { ChannelModel } from "./model.js";
import {
  parseServerFrame,
  type CallFrame,
  type ClientFrame,
  type ErrorFrame,
  type ResultFrame,
  type WelcomeFrame,
  type WriteFrame,
} from "./protocol.js";
import { Subscription, type SubscriptionHandler } from "./subscription.js";

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
export function backoffDelay(attempt: number, base: number, max: number, random: () => number = Math.random): number {
  return random() * Math.min(max, base * 2 ** attempt);
}

type Timer = ReturnType<typeof setTimeout>;

/** A write frame before the connection gives it its id and subscription. */
export type WriteRequestFrame = WriteFrame extends infer F ? (F extends WriteFrame ? Omit<F, "id" | "sub"> : never) : never;

interface PendingCall {
  /** A call or a write: both are answered by a result frame. */
  readonly frame: (CallFrame | WriteFrame) & { readonly id: number };
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: RxError) => void;
}

interface SubEntry {
  readonly channel: string;
  readonly h: SubscriptionHandler;
}

const shared = new Map<string, Connection>();
const noop = (): void => {};

// utf8Length is the length of s in UTF-8 bytes.
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      n += 4; // a surrogate pair
      i++;
    } else n += 3;
  }
  return n;
}

/** A multiplexed connection to an rxgorm server. */
export class Connection {
  /**
   * The shared connection for url and token: every caller with the same
   * pair gets the same object (the other options of the first call win).
   */
  static get(url: string, options: ConnectOptions = {}): Connection {
    const key = url + "\u0000" + (options.token ?? "");
    let c = shared.get(key);
    if (!c) {
      c = new Connection(url, options);
      shared.set(key, c);
    }
    return c;
  }

  readonly url: string;
  readonly token: string | undefined;

  readonly #WebSocket: WebSocketConstructor | undefined;
  readonly #backoffBase: number;
  readonly #backoffMax: number;
  readonly #idleTimeout: number;

  #status: ConnectionStatus = "idle";
  #error: RxError | null = null;
  #user: string | null = null;
  #socket: WebSocketLike | null = null;
  #welcomed = false;
  /** The server's read limit from welcome, in bytes (0: unknown). */
  #maxMessage = 0;
  /** Between an unexpected close and the next welcome. */
  #recovering = false;
  #attempt = 0;
  #reconnectTimer: Timer | null = null;
  #idleTimer: Timer | null = null;
  /** An error frame received before welcome: the reason of the close that follows. */
  #helloError: RxError | null = null;
  #nextSub = 0;
  #nextCall = 0;
  readonly #subs = new Map<string, SubEntry>();
  readonly #pending = new Map<number, PendingCall>();
  #queue: PendingCall[] = [];
  readonly #statusListeners = new Listeners<[ConnectionStatus, RxError | null]>();
  readonly #systemListeners = new Listeners<[unknown]>();
  readonly #errorListeners = new Listeners<[RxError]>();

  /** A connection of its own; prefer Connection.get, which shares one per url and token. */
  constructor(url: string, options: ConnectOptions = {}) {
    this.url = url;
    this.token = options.token;
    this.#WebSocket = options.WebSocket;
    this.#backoffBase = options.backoffBase ?? 100;
    this.#backoffMax = options.backoffMax ?? 10_000;
    this.#idleTimeout = options.idleTimeout ?? 100;
  }

  get status(): ConnectionStatus {
    return this.#status;
  }

  /** Why the connection stopped ("closed" or "unauthenticated"), else null. */
  get error(): RxError | null {
    return this.#error;
  }

  /** The user id of the last welcome ("" for anonymous), null before any. */
  get user(): string | null {
    return this.#user;
  }

  /** Calls listener when the status changes. */
  onStatus(listener: (status: ConnectionStatus, error: RxError | null) => void): () => void {
    return this.#statusListeners.add(listener);
  }

  /** Calls listener with the message of each system broadcast. */
  onSystem(listener: (message: unknown) => void): () => void {
    return this.#systemListeners.add(listener);
  }

  /** Calls listener with errors tied to no call or subscription (a refused hello, a frame the server could not use). */
  onError(listener: (error: RxError) => void): () => void {
    return this.#errorListeners.add(listener);
  }

  /**
   * Subscribes to channel with params; model tells how to nest its state.
   * The first subscription opens the socket. Close the subscription to
   * release it.
   */
  subscribe<State = unknown, Runtime extends object = Record<string, unknown>>(
    channel: string,
    params: unknown,
    model: ChannelModel,
  ): Subscription<State, Runtime> {
    const id = String(++this.#nextSub);
    return new Subscription<State, Runtime>(this, id, channel, params, model, (h) => {
      this.#subs.set(id, { channel, h });
      this.#attach(h);
      return () => this.#release(id);
    });
  }

  /**
   * Calls action on the channel instance of subscription subId. It resolves
   * with the result's value and rejects with an RxError carrying the
   * server's code.
   */
  call<T = unknown>(subId: string, action: string, args: readonly unknown[] = []): Promise<T> {
    return this.#request<T>(subId, (id) => ({ type: "call", id, sub: subId, action, args: [...args] }));
  }

  /**
   * Sends a client write (save, create or delete) for subscription subId.
   * It resolves with the result's value ({row: id}) and rejects like call.
   * Subscription.write applies it optimistically first.
   */
  write<T = unknown>(subId: string, frame: WriteRequestFrame): Promise<T> {
    return this.#request<T>(subId, (id) => ({ ...frame, id, sub: subId }) as WriteFrame & { readonly id: number });
  }

  #request<T>(subId: string, make: (id: number) => (CallFrame | WriteFrame) & { readonly id: number }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!this.#subs.has(subId)) {
        reject(new RxError(ErrorCode.NotFound, `no subscription ${subId}`));
        return;
      }
      if (this.#status === "closed" || this.#status === "unauthenticated") {
        reject(this.#error ?? new RxError(ErrorCode.Internal, "connection closed"));
        return;
      }
      const call: PendingCall = {
        frame: make(++this.#nextCall),
        resolve: resolve as (value: unknown) => void,
        reject,
      };
      if (this.#welcomed) this.#sendCall(call);
      else this.#queue.push(call);
    });
  }

  /**
   * Connects again now: after a stop (for example once the server accepts
   * the token again), or to skip the rest of a backoff delay.
   */
  reconnect(): void {
    if (this.#socket) return; // open, or an attempt is under way
    this.#attempt = 0;
    this.#recovering = false;
    if (this.#subs.size === 0) {
      this.#goIdle();
      return;
    }
    this.#connect();
  }

  /**
   * Closes the socket and ends every subscription (status "closed"); pending
   * calls reject. The connection returns to "idle" and connects again for the
   * next subscription.
   */
  close(): void {
    const entries = [...this.#subs.values()];
    this.#subs.clear();
    this.#goIdle();
    for (const e of entries) e.h.stopped(null);
  }

  #setStatus(status: ConnectionStatus, error: RxError | null): void {
    if (this.#status === status && this.#error === error) return;
    this.#status = status;
    this.#error = error;
    this.#statusListeners.emit(status, error);
  }

  #attach(h: SubscriptionHandler): void {
    this.#cancelIdle();
    if (this.#welcomed) {
      this.#send(h.subFrame());
      return;
    }
    switch (this.#status) {
      case "idle":
        this.#connect();
        break;
      case "closed":
      case "unauthenticated":
        h.stopped(this.#error);
        break;
      default:
        break; // sent on welcome
    }
  }

  #release(id: string): void {
    if (!this.#subs.delete(id)) return;
    if (this.#welcomed) this.#send({ type: "unsub", id });
    if (this.#subs.size === 0) this.#scheduleIdle();
  }

  #scheduleIdle(): void {
    this.#cancelIdle();
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      if (this.#subs.size === 0) this.#goIdle();
    }, this.#idleTimeout);
  }

  #cancelIdle(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  #clearReconnect(): void {
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = null;
  }

  #goIdle(): void {
    this.#cancelIdle();
    this.#clearReconnect();
    this.#dropSocket();
    this.#failCalls(new RxError(ErrorCode.Internal, "connection closed"));
    this.#attempt = 0;
    this.#recovering = false;
    this.#setStatus("idle", null);
  }

  #connect(): void {
    this.#clearReconnect();
    const WS = this.#WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) {
      this.#stop("closed", new RxError(ErrorCode.Internal, "no WebSocket implementation: pass the WebSocket option"));
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new WS(this.url);
    } catch (err) {
      this.#stop("closed", new RxError(ErrorCode.BadRequest, `cannot open ${this.url}: ${String(err)}`));
      return;
    }
    this.#socket = ws;
    ws.onopen = () => {
      if (this.#socket !== ws) return;
      this.#send(
        this.token
          ? { type: "hello", v: PROTOCOL_VERSION, token: this.token, batch: true }
          : { type: "hello", v: PROTOCOL_VERSION, batch: true },
      );
    };
    ws.onmessage = (ev: { data: unknown }) => {
      if (this.#socket === ws) this.#onFrame(ws, ev.data);
    };
    ws.onclose = (ev: { code: number; reason?: string }) => {
      if (this.#socket === ws) this.#onClose(ev.code, ev.reason ?? "");
    };
    ws.onerror = noop; // a close event follows
    this.#setStatus(this.#recovering ? "reconnecting" : "connecting", null);
  }

  // dropSocket detaches and closes the socket, if any, with 1000.
  #dropSocket(): void {
    const ws = this.#socket;
    this.#socket = null;
    this.#welcomed = false;
    this.#helloError = null;
    if (!ws) return;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = noop; // some implementations throw on an unhandled error event
    try {
      ws.close(CloseCode.Normal);
    } catch {
      // already closing
    }
  }

  #onClose(code: number, reason: string): void {
    const helloError = this.#helloError;
    this.#socket = null;
    this.#welcomed = false;
    this.#helloError = null;
    const lost = new RxError(ErrorCode.Internal, "connection lost", code);
    for (const call of this.#pending.values()) call.reject(lost);
    this.#pending.clear();
    switch (code) {
      case CloseCode.AuthFailed:
        this.#stop(
          "unauthenticated",
          new RxError(ErrorCode.Unauthenticated, helloError?.message || reason || "authentication failed", code),
        );
        return;
      case CloseCode.BadVersion:
      case CloseCode.PolicyViolation:
      case CloseCode.TooLarge:
        this.#stop(
          "closed",
          new RxError(ErrorCode.BadRequest, helloError?.message || reason || `closed by the server (${code})`, code),
        );
        return;
      case CloseCode.Normal:
        this.#stop("closed", null);
        return;
    }
    if (this.#subs.size === 0) {
      this.#goIdle();
      return;
    }
    this.#recovering = true;
    const delay = backoffDelay(this.#attempt++, this.#backoffBase, this.#backoffMax);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#subs.size === 0) this.#goIdle();
      else this.#connect();
    }, delay);
    this.#setStatus("reconnecting", null);
    for (const e of [...this.#subs.values()]) e.h.disconnected();
  }

  #stop(status: "closed" | "unauthenticated", err: RxError | null): void {
    this.#clearReconnect();
    this.#dropSocket();
    this.#recovering = false;
    this.#failCalls(err ?? new RxError(ErrorCode.Internal, "connection closed"));
    this.#setStatus(status, err);
    for (const e of [...this.#subs.values()]) e.h.stopped(err);
  }

  #failCalls(err: RxError): void {
    const calls = [...this.#pending.values(), ...this.#queue];
    this.#pending.clear();
    this.#queue = [];
    for (const call of calls) call.reject(err);
  }

  #send(frame: ClientFrame): void {
    try {
      this.#socket?.send(JSON.stringify(frame));
    } catch {
      // The socket is closing; its close event handles the rest.
    }
  }

  #sendCall(call: PendingCall): void {
    const data = JSON.stringify(call.frame);
    if (this.#maxMessage > 0 && utf8Length(data) > this.#maxMessage) {
      // The server would close the socket with 1009, which stops the
      // connection: refuse the one call instead.
      call.reject(
        new RxError(
          ErrorCode.BadRequest,
          `${call.frame.type === "call" ? `call of ${call.frame.action}` : `${call.frame.type} of ${call.frame.layer}`} exceeds the server's limit of ${this.#maxMessage} bytes`,
        ),
      );
      return;
    }
    this.#pending.set(call.frame.id, call);
    try {
      this.#socket?.send(data);
    } catch {
      // The socket is closing; its close event rejects the call.
    }
  }

  // onFrame handles a frame of ws: one message or, separated by "\n",
  // several (batch), each as if it had come alone.
  #onFrame(ws: WebSocketLike, data: unknown): void {
    const text = typeof data === "string" ? data : String(data);
    let end = text.indexOf("\n");
    if (end < 0) {
      this.#onMessage(text); // the common case: one message
      return;
    }
    for (let start = 0; ; ) {
      try {
        this.#onMessage(text.slice(start, end < 0 ? undefined : end));
      } catch (err) {
        report(err); // as if thrown by a frame's own event listener
      }
      // A part that dropped the socket (a listener closed the connection)
      // ends the frame, as later frames would not be handled either.
      if (end < 0 || this.#socket !== ws) return;
      start = end + 1;
      end = text.indexOf("\n", start);
    }
  }

  #onMessage(text: string): void {
    const m = parseServerFrame(text);
    if (!m) return;
    switch (m.type) {
      case "welcome":
        this.#onWelcome(m);
        break;
      case "snapshot":
        this.#subs.get(String(m.sub))?.h.snapshot(m);
        break;
      case "done":
        this.#subs.get(String(m.sub))?.h.done();
        break;
      case "anchors":
        this.#subs.get(String(m.sub))?.h.anchors(m.ids ?? []);
        break;
      case "runtime":
        this.#subs.get(String(m.sub))?.h.runtime(m.key, m.value);
        break;
      case "presence":
        this.#subs.get(String(m.sub))?.h.presence(String(m.anchor), m.users ?? []);
        break;
      case "delta":
        // A delta names its stream; it applies to every subscription on it.
        for (const [id, e] of [...this.#subs]) {
          if (e.channel !== m.channel || e.h.delta(m) || !this.#welcomed) continue;
          // A gap: end the server's subscription and resume it with since.
          this.#send({ type: "unsub", id });
          this.#send(e.h.subFrame());
        }
        break;
      case "result":
        this.#onResult(m);
        break;
      case "error":
        this.#onError(m);
        break;
      case "system":
        this.#systemListeners.emit(m.message);
        break;
      default:
        break; // unsubscribed, and frames of a newer server
    }
  }

  #onWelcome(m: WelcomeFrame): void {
    if (this.#welcomed) return;
    this.#welcomed = true;
    this.#attempt = 0;
    this.#recovering = false;
    this.#user = typeof m.user === "string" ? m.user : "";
    this.#maxMessage = typeof m.maxMessage === "number" ? m.maxMessage : 0;
    // "open" before the subs go out, so that a subscription made by a
    // listener below is sent at once; listeners hear of it afterwards.
    this.#status = "open";
    this.#error = null;
    for (const [id, e] of [...this.#subs]) {
      if (this.#subs.get(id) === e && this.#welcomed) this.#send(e.h.subFrame());
    }
    if (!this.#welcomed) return; // a listener closed the connection
    const queue = this.#queue;
    this.#queue = [];
    for (const call of queue) this.#sendCall(call);
    this.#statusListeners.emit("open", null);
  }

  #onResult(m: ResultFrame): void {
    const id = Number(m.id);
    const call = this.#pending.get(id);
    if (!call) return;
    this.#pending.delete(id);
    if (m.error) call.reject(RxError.fromWire(m.error));
    else call.resolve(m.value);
  }

  #onError(m: ErrorFrame): void {
    const err = RxError.fromWire(m);
    if (m.sub !== undefined && m.sub !== null) {
      const id = String(m.sub);
      const e = this.#subs.get(id);
      if (!e) return; // already released
      if (err.code === ErrorCode.Overloaded) {
        this.#send(e.h.subFrame()); // resume with since
        return;
      }
      this.#subs.delete(id);
      e.h.ended(err);
      if (this.#subs.size === 0) this.#scheduleIdle();
      return;
    }
    if (!this.#welcomed) this.#helloError = err;
    this.#errorListeners.emit(err);
  }
}
