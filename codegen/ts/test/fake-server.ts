// An in-process fake of the rxgorm server: a ws WebSocketServer whose every
// frame is sent by the test script, so timing is exact.

import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { WebSocket, WebSocketServer } from "ws";
import type { ConnectOptions } from "../src/runtime/index.js";

// The real timers, taken before any test mocks the global clock
// (t.mock.timers): the fake server's own waits keep running on them.
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

/**
 * ws's WebSocket, counting the sockets clients open. A client opens one
 * synchronously (in subscribe, or in the timer that reconnects), so the
 * count says at once whether it tried to connect, with no wait.
 */
export class CountingWebSocket extends WebSocket {
  static opened = 0;
  /** The sockets not closed yet, by the url they were opened to. */
  static readonly live = new Map<CountingWebSocket, string>();
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    CountingWebSocket.opened++;
    CountingWebSocket.live.set(this, String(args[0]));
    this.once("close", () => CountingWebSocket.live.delete(this));
  }
}

export type Frame = Record<string, any>;

const TIMEOUT = 2000;

/** A server-side socket, driven by the test. */
export class FakeSocket {
  readonly ws: WebSocket;
  readonly received: Frame[] = [];
  /** Resolves with the close code the server saw. */
  readonly closed: Promise<number>;
  #read = 0;
  #wake: (() => void) | null = null;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data) => {
      this.received.push(JSON.parse(String(data)) as Frame);
      this.#wake?.();
    });
    this.closed = new Promise((resolve) => ws.on("close", (code) => resolve(code)));
  }

  /** The next frame the client sent, in order; with type, asserts its type. */
  async next(type?: string, timeout = TIMEOUT): Promise<Frame> {
    const deadline = Date.now() + timeout;
    while (this.#read >= this.received.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for a client frame${type ? ` of type ${type}` : ""}`);
      await new Promise<void>((resolve) => {
        const t = realSetTimeout(resolve, left);
        this.#wake = () => {
          realClearTimeout(t);
          resolve();
        };
      });
      this.#wake = null;
    }
    const m = this.received[this.#read++]!;
    if (type !== undefined && m.type !== type) {
      throw new Error(`want a ${type} frame, got ${JSON.stringify(m)}`);
    }
    return m;
  }

  /**
   * Fails if the client sent a frame not read yet. No clock: the client
   * answers a ping after every frame it sent before it saw the ping, so
   * once the pong is in, so are they.
   */
  async expectSilence(): Promise<void> {
    const pong = once(this.ws, "pong");
    this.ws.ping();
    await pong;
    if (this.received.length > this.#read) {
      throw new Error(`unexpected client frame ${JSON.stringify(this.received[this.#read])}`);
    }
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends text as one text frame, as it is. */
  sendText(text: string): void {
    this.ws.send(text);
  }

  /** Sends messages (frames, or text sent as it is) in one frame, separated by "\n" (batch). */
  sendBatch(messages: (Frame | string)[]): void {
    this.sendText(messages.map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join("\n"));
  }

  /** Reads hello and answers welcome; returns the hello. */
  async handshake(user = "7"): Promise<Frame> {
    const hello = await this.next("hello");
    this.send({ type: "welcome", v: 1, user, maxMessage: 1048576 });
    return hello;
  }

  /** Closes with a close frame carrying code. */
  close(code: number, reason = ""): void {
    this.ws.close(code, reason);
  }

  /** Drops the TCP connection without a close frame: the client sees 1006. */
  terminate(): void {
    this.ws.terminate();
  }
}

/** The fake server. */
export class FakeServer {
  readonly wss: WebSocketServer;
  readonly url: string;
  readonly sockets: FakeSocket[] = [];
  #taken = 0;
  #openedBefore = CountingWebSocket.opened;
  #wake: (() => void) | null = null;

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    this.url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/rx`;
    wss.on("connection", (ws) => {
      this.sockets.push(new FakeSocket(ws));
      this.#wake?.();
    });
  }

  static async start(): Promise<FakeServer> {
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await once(wss, "listening");
    return new FakeServer(wss);
  }

  /** The next socket a client opened, in order. */
  async accept(timeout = TIMEOUT): Promise<FakeSocket> {
    const deadline = Date.now() + timeout;
    while (this.#taken >= this.sockets.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("timeout waiting for a client to connect");
      await new Promise<void>((resolve) => {
        const t = realSetTimeout(resolve, left);
        this.#wake = () => {
          realClearTimeout(t);
          resolve();
        };
      });
      this.#wake = null;
    }
    return this.sockets[this.#taken++]!;
  }

  /**
   * Fails if a client opened a socket since this server started that the
   * test did not accept. Synchronous: a client that would connect later
   * does so from a timer, which a test runs by advancing a mocked clock
   * (t.mock.timers.tick) first.
   */
  expectNoConnection(): void {
    const opened = CountingWebSocket.opened - this.#openedBefore;
    if (opened > this.#taken) throw new Error(`unexpected client connection (${opened} opened, ${this.#taken} accepted)`);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    // The clients' sockets close too before the next test: a socket still
    // closing would clear its (real) close timer with a clock the next
    // test mocked, and the timer would hold the process for 30 s.
    const closing = [...CountingWebSocket.live].filter(([, url]) => url.startsWith(this.url)).map(([ws]) => once(ws, "close"));
    await Promise.all(closing);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => realSetTimeout(resolve, ms));
}

/** Polls cond until it is true. */
export async function waitFor(cond: () => boolean, what = "condition", timeout = TIMEOUT): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timeout waiting for ${what}`);
    await sleep(2);
  }
}

/** Client options for tests: ws as WebSocket, short backoff and grace. */
export function testOptions(extra: ConnectOptions = {}): ConnectOptions {
  return {
    WebSocket: CountingWebSocket,
    backoffBase: 5,
    backoffMax: 20,
    idleTimeout: 30,
    ...extra,
  };
}
