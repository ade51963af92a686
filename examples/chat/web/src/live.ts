// Staying live: the connection's health as the UI shows it (a banner when
// offline, reconnecting or stalled), the application heartbeat that finds
// a silent stall, and the outbox of messages not sent yet.
//
// The runtime reconnects on its own when the socket closes, but a socket
// can stall without closing (a dead NAT mapping, a suspended laptop, a
// proxy that stops forwarding): nothing arrives, and nothing says so. The
// heartbeat calls HomeChannel.ping every PING_EVERY ms; a ping unanswered
// for STALL_AFTER ms marks the connection stalled and aborts the socket,
// and the runtime reconnects and resumes every subscription with since.
// A stall is thus seen within PING_EVERY + STALL_AFTER (under 10 s).
import { useEffect, useMemo, useState, useSyncExternalStore } from "react";
import type { HomeChannel } from "./rx/chat.channels";
import type { Connection, WebSocketConstructor, WebSocketLike } from "./rx/rxgorm";

/** How often the heartbeat pings, in ms. */
export const PING_EVERY = 3000;
/** A ping unanswered this long (ms) means the socket stalled. */
export const STALL_AFTER = 5000;
/** A socket that receives nothing this long (ms) after opening is aborted. */
const OPEN_TIMEOUT = 8000;

type Handler = ((event: never) => void) | null;

/**
 * A WebSocket the app can abort: the runtime's sockets are made through
 * sockets.WebSocket, and abort() closes the current one at once, telling
 * the runtime it was lost (1006) without waiting for a closing handshake
 * that a stalled network would never complete.
 */
export class Sockets {
  #current: Watched | null = null;
  /** The constructor to pass to Connection (ConnectOptions.WebSocket). */
  readonly WebSocket: WebSocketConstructor;

  constructor() {
    const sockets = this;
    this.WebSocket = class extends Watched {
      constructor(url: string) {
        super(url);
        sockets.#current = this;
      }
    };
  }

  /** When the current socket last received a frame (0: never), and when it was made. */
  get current(): { readonly created: number; readonly lastFrame: number } | null {
    return this.#current;
  }

  /** Drops the current socket as lost; the runtime reconnects. */
  abort(): void {
    this.#current?.abort();
  }
}

class Watched implements WebSocketLike {
  readonly #ws: WebSocket;
  readonly created = Date.now();
  lastFrame = 0;
  #aborted = false;
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;

  constructor(url: string) {
    this.#ws = new WebSocket(url);
    this.#ws.onopen = (e) => this.#emit(this.onopen, e);
    this.#ws.onmessage = (e) => {
      this.lastFrame = Date.now();
      this.#emit(this.onmessage, e);
    };
    this.#ws.onclose = (e) => this.#emit(this.onclose, e);
    this.#ws.onerror = (e) => this.#emit(this.onerror, e);
  }

  get readyState(): number {
    return this.#aborted ? WebSocket.CLOSED : this.#ws.readyState;
  }

  send(data: string): void {
    if (!this.#aborted) this.#ws.send(data);
  }

  close(code?: number, reason?: string): void {
    if (this.#aborted) return;
    this.#ws.close(code, reason);
  }

  abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    const onclose = this.onclose;
    this.#ws.onopen = this.#ws.onmessage = this.#ws.onclose = this.#ws.onerror = null;
    try {
      this.#ws.close();
    } catch {
      // already closing
    }
    this.#emit(onclose, { code: 1006, reason: "stalled" });
  }

  #emit(handler: Handler, event: unknown): void {
    (handler as ((e: unknown) => void) | null)?.(event);
  }
}

/** What the banner says about the connection. */
export type Health = "live" | "connecting" | "reconnecting" | "stalled" | "offline";

function useOnline(): boolean {
  return useSyncExternalStore(
    (f) => {
      window.addEventListener("online", f);
      window.addEventListener("offline", f);
      return () => {
        window.removeEventListener("online", f);
        window.removeEventListener("offline", f);
      };
    },
    () => navigator.onLine,
  );
}

function useConnStatus(conn: Connection) {
  return useSyncExternalStore(
    (f) => conn.onStatus(f),
    () => conn.status,
  );
}

/**
 * Runs the heartbeat over home and returns the connection's health. A
 * ping unanswered for STALL_AFTER ms makes it "stalled" (and aborts the
 * socket, so that the runtime reconnects); an answer makes it live again.
 */
export function useHealth(conn: Connection, home: HomeChannel, sockets: Sockets): Health {
  const online = useOnline();
  const status = useConnStatus(conn);
  const [stalled, setStalled] = useState(false);
  useEffect(() => {
    let inflight = 0; // when the pending ping went out; 0: none
    let gen = 0;
    const tick = () => {
      const now = Date.now();
      if (conn.status !== "open") {
        inflight = 0;
        // A socket opened but silent (no welcome) is as good as stalled.
        const s = sockets.current;
        if ((conn.status === "reconnecting" || conn.status === "connecting") && s && s.lastFrame === 0 && now - s.created > OPEN_TIMEOUT) {
          sockets.abort();
        }
        return;
      }
      if (inflight !== 0) {
        if (now - inflight > STALL_AFTER) {
          inflight = 0;
          gen++;
          setStalled(true);
          sockets.abort();
        }
        return;
      }
      inflight = now;
      const g = gen;
      home.ping().then(
        () => {
          if (g !== gen) return;
          inflight = 0;
          setStalled(false);
        },
        () => {
          if (g === gen) inflight = 0; // lost with the socket: the status says so
        },
      );
    };
    const t = setInterval(tick, PING_EVERY / 3);
    // Back online: connect now rather than at the end of a backoff delay.
    const online = () => conn.reconnect();
    window.addEventListener("online", online);
    return () => {
      clearInterval(t);
      window.removeEventListener("online", online);
      gen++;
    };
  }, [conn, home, sockets]);
  // Back to live once a ping is answered after a reconnect.
  if (!online) return "offline";
  if (stalled) return "stalled";
  if (status === "open") return "live";
  return status === "reconnecting" ? "reconnecting" : "connecting";
}

/** A message typed but not stored yet. */
export interface Pending {
  /** The idempotency key sent with postMessage. */
  readonly clientId: string;
  readonly chatId: string;
  readonly text: string;
  /** When it was typed (ISO). */
  readonly at: string;
  /** Why the server refused it; undefined while it is being sent. */
  readonly error?: string;
}

/**
 * The messages of the session not stored yet, per chat: shown with a
 * pending mark until the server answers, sent again (same client id, so
 * never twice) after a reconnect, or shown as failed when refused. They
 * are kept in the tab's sessionStorage under key, so a reload keeps them.
 */
export class Outbox {
  #items: readonly Pending[] = [];
  readonly #listeners = new Set<() => void>();
  readonly #key: string;

  constructor(key: string) {
    this.#key = key;
    try {
      const saved: unknown = JSON.parse(sessionStorage.getItem(key) ?? "[]");
      if (Array.isArray(saved)) this.#items = saved.filter(isPending);
    } catch {
      // nothing saved, or unreadable: start empty
    }
  }

  /** Forgets every message, saved ones included (sign-out). */
  clear(): void {
    this.#set([]);
  }

  get items(): readonly Pending[] {
    return this.#items;
  }

  subscribe(f: () => void): () => void {
    this.#listeners.add(f);
    return () => this.#listeners.delete(f);
  }

  #set(items: readonly Pending[]): void {
    this.#items = items;
    try {
      if (items.length === 0) sessionStorage.removeItem(this.#key);
      else sessionStorage.setItem(this.#key, JSON.stringify(items));
    } catch {
      // storage full or disabled: the outbox still works for this page
    }
    for (const f of [...this.#listeners]) f();
  }

  /** Queues text for chatId and returns its entry. */
  add(chatId: string, text: string): Pending {
    const p: Pending = { clientId: newClientId(), chatId, text, at: new Date().toISOString() };
    this.#set([...this.#items, p]);
    return p;
  }

  /** Forgets a message: stored, or discarded by the user. */
  remove(clientId: string): void {
    this.#set(this.#items.filter((p) => p.clientId !== clientId));
  }

  /** Marks a message refused by the server. */
  fail(clientId: string, error: string): void {
    this.#set(this.#items.map((p) => (p.clientId === clientId ? { ...p, error } : p)));
  }

  /** Makes a failed message pending again (Retry). */
  retry(clientId: string): void {
    this.#set(this.#items.map((p) => (p.clientId === clientId ? { clientId: p.clientId, chatId: p.chatId, text: p.text, at: p.at } : p)));
  }
}

/** The outbox's messages of one chat, live. */
export function usePending(outbox: Outbox, chatId: string): readonly Pending[] {
  const all = useSyncExternalStore(
    (f) => outbox.subscribe(f),
    () => outbox.items,
  );
  return useMemo(() => all.filter((p) => p.chatId === chatId), [all, chatId]);
}

function isPending(x: unknown): x is Pending {
  const p = x as Partial<Pending> | null;
  return (
    typeof p === "object" &&
    p !== null &&
    typeof p.clientId === "string" &&
    typeof p.chatId === "string" &&
    typeof p.text === "string" &&
    typeof p.at === "string" &&
    (p.error === undefined || typeof p.error === "string")
  );
}

function newClientId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}
