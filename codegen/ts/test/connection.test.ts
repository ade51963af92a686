// Connection and Subscription against the scripted fake server.

import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { Connection, RxError, backoffDelay, type ConnectOptions } from "../src/runtime/index.js";
import { FakeServer, type FakeSocket, testOptions, waitFor } from "./fake-server.js";
import { CHAT_LIST_MODEL, CHAT_MODEL, type Obj, chatRows, row, tomb } from "./models.js";

async function setup(t: TestContext) {
  const srv = await FakeServer.start();
  const conns: Connection[] = [];
  t.after(async () => {
    for (const c of conns) c.close();
    await srv.stop();
  });
  const connect = (opts: ConnectOptions = {}): Connection => {
    const c = new Connection(srv.url, testOptions(opts));
    conns.push(c);
    return c;
  };
  return { srv, connect };
}

/** Subscribes to chat 5 and plays hello, sub, a snapshot at version and done. */
async function readyChat(t: TestContext, version = 100) {
  const { srv, connect } = await setup(t);
  const conn = connect();
  const sub = conn.subscribe<Obj>("ChatChannel", { chatId: 5 }, CHAT_MODEL);
  const sock = await srv.accept();
  await sock.handshake();
  await sock.next("sub");
  sock.send({ type: "snapshot", sub: sub.id, anchor: "5", version, reset: true, more: false, instances: chatRows(5) });
  sock.send({ type: "done", sub: sub.id });
  await waitFor(() => sub.ready, "ready");
  return { srv, connect, conn, sub, sock };
}

function delta(version: number, instances: unknown[], anchor = "5", channel = "ChatChannel") {
  return { type: "delta", channel, anchor, version, instances };
}

describe("Connection", () => {
  it("says hello, subscribes and applies a snapshot in batches", async (t) => {
    const { srv, connect } = await setup(t);
    const conn = connect({ token: "tok" });
    const statuses: string[] = [];
    conn.onStatus((s) => statuses.push(s));
    assert.equal(conn.status, "idle");
    const sub = conn.subscribe<Obj>("ChatChannel", { chatId: 5 }, CHAT_MODEL);
    assert.equal(conn.status, "connecting");
    assert.equal(sub.status, "subscribing");
    const states: (Obj | null)[] = [];
    sub.subscribe((s) => states.push(s));

    const sock = await srv.accept();
    assert.deepEqual(await sock.handshake("7"), { type: "hello", v: 1, token: "tok", batch: true });
    assert.deepEqual(await sock.next("sub"), {
      type: "sub",
      id: sub.id,
      channel: "ChatChannel",
      params: { chatId: 5 },
    });
    await waitFor(() => conn.status === "open", "open");
    assert.equal(conn.user, "7");

    const [chat, alice, bob, msg] = chatRows(5);
    sock.send({ type: "snapshot", sub: sub.id, anchor: "5", version: 100, reset: true, more: true, instances: [chat, alice] });
    await waitFor(() => states.length === 1, "first batch");
    assert.deepEqual(states[0]!.members, [{ id: 1, name: "alice" }]);
    assert.equal(sub.ready, false);

    sock.send({ type: "snapshot", sub: sub.id, anchor: "5", version: 100, reset: false, more: false, instances: [bob, msg] });
    await waitFor(() => states.length === 2, "second batch");
    assert.deepEqual(states[1]!.messages[0].sender, { id: 2, name: "bob" });
    assert.equal(states[1]!.members[0], states[0]!.members[0]);

    sock.send({ type: "done", sub: sub.id });
    await waitFor(() => sub.ready, "done");
    assert.equal(sub.status, "ready");
    assert.equal(sub.getState(), states[1]);
    assert.deepEqual(statuses, ["connecting", "open"]);
  });

  it("sends hello without token when there is none", async (t) => {
    const { srv, connect } = await setup(t);
    connect().subscribe("ChatChannel", {}, CHAT_MODEL);
    const sock = await srv.accept();
    assert.deepEqual(await sock.next("hello"), { type: "hello", v: 1, batch: true });
  });

  it("handles a frame of several messages as the same messages in separate frames", async (t) => {
    // Two deltas of the stream (the second applies on top of the first:
    // from 101) and the result of a call, in separate frames or in one.
    const play = async (batch: boolean) => {
      const { sub, sock } = await readyChat(t);
      const titles: string[] = [];
      sub.subscribe((s) => titles.push(s!.title));
      let value: unknown = "unanswered";
      void sub.call<number>("add", [1, 2]).then((v) => (value = v));
      const c = await sock.next("call");
      const messages = [
        {
          ...delta(101, [
            row("Message", "51", { id: 51, chatId: 5, sender: 1, senderId: 1, text: "hi" }),
            row("Chat", "5", { title: "t101", messages: [50, 51] }),
          ]),
          from: 100,
        },
        { ...delta(102, [row("Chat", "5", { title: "t102" })]), from: 101 },
        { type: "result", id: c.id, value: 3 },
      ];
      if (batch) sock.sendBatch(messages);
      else for (const m of messages) sock.send(m);
      // overloaded makes the client resubscribe with the versions it holds,
      // and marks the end: frames are handled in order.
      sock.send({ type: "error", sub: sub.id, code: "overloaded", message: "marker" });
      const resub = await sock.next("sub");
      return { state: sub.getState(), since: resub.since, titles, value };
    };
    const separate = await play(false);
    assert.deepEqual(separate.since, { "5": 102 });
    assert.deepEqual(separate.titles, ["t101", "t102"]);
    assert.equal(separate.value, 3);
    const batched = await play(true);
    assert.deepEqual(batched, separate);
  });

  it("handles each part of a frame apart: a malformed one does not stop the others", async (t) => {
    const { conn, sub, sock } = await readyChat(t);
    const reported: unknown[] = [];
    const g = globalThis as { reportError?: (e: unknown) => void };
    const reportError = g.reportError;
    g.reportError = (e) => reported.push(e);
    t.after(() => {
      if (reportError) g.reportError = reportError;
      else delete g.reportError;
    });
    const system: unknown[] = [];
    conn.onSystem((m) => system.push(m));
    let value: unknown = "unanswered";
    void sub.call<number>("add", [1, 2]).then((v) => (value = v));
    const c = await sock.next("call");

    // Alone, a frame that is not a message is ignored.
    sock.sendText("not json {");
    sock.send({ type: "system", message: "after the bad frame" });
    await waitFor(() => system.length === 1, "system");

    sock.sendBatch([
      delta(101, [row("Chat", "5", { title: "t101" })]),
      "not json {", // ignored, as the frame above
      '{"no":"type"}', // ignored: not a message
      "", // ignored
      // A message whose handling throws (instances is not a list): reported
      // as an exception of an event listener, and the parts after it run.
      { ...delta(102, []), instances: 5 },
      { ...delta(102, [row("Chat", "5", { title: "t102" })]), from: 101 },
      { type: "result", id: c.id, value: 3 },
      { type: "system", message: "last part" },
    ]);
    await waitFor(() => system.length === 2, "the last part");
    assert.deepEqual(system, ["after the bad frame", "last part"]);
    assert.equal(sub.getState()!.title, "t102");
    assert.equal(value, 3);
    assert.equal(reported.length, 1);
    assert.ok(reported[0] instanceof TypeError);
    sock.send({ type: "error", sub: sub.id, code: "overloaded", message: "fell behind" });
    assert.deepEqual((await sock.next("sub")).since, { "5": 102 });
    assert.equal(conn.status, "open");
  });

  it("drops the rest of a frame once a part closed the connection", async (t) => {
    const { conn, sub, sock } = await readyChat(t);
    const system: unknown[] = [];
    conn.onSystem((m) => {
      system.push(m);
      if (m === "close") conn.close();
    });
    sock.sendBatch([
      { type: "system", message: "first" },
      { type: "system", message: "close" },
      { type: "system", message: "after close" },
    ]);
    await waitFor(() => system.length >= 2, "the parts");
    assert.equal(await sock.closed, 1000);
    assert.deepEqual(system, ["first", "close"]);
    assert.equal(sub.status, "closed");
  });

  it("applies deltas to every subscription of the stream, once per version", async (t) => {
    const { conn, sub, sock } = await readyChat(t);
    const twin = conn.subscribe<Obj>("ChatChannel", { chatId: 5 }, CHAT_MODEL);
    const other = conn.subscribe<Obj>("OtherChannel", { chatId: 5 }, CHAT_MODEL);
    assert.equal((await sock.next("sub")).id, twin.id);
    assert.equal((await sock.next("sub")).id, other.id);
    for (const s of [twin, other]) {
      sock.send({ type: "snapshot", sub: s.id, anchor: "5", version: 100, reset: true, more: false, instances: chatRows(5) });
      sock.send({ type: "done", sub: s.id });
    }
    await waitFor(() => twin.ready && other.ready, "ready");
    const otherState = other.getState();

    sock.send(delta(101, [row("Chat", "5", { title: "renamed" })]));
    await waitFor(() => sub.getState()!.title === "renamed" && twin.getState()!.title === "renamed", "delta");
    assert.equal(other.getState(), otherState, "a delta of another channel does not apply");

    const s1 = sub.getState();
    sock.send(delta(101, [row("Chat", "5", { title: "again" })])); // duplicate version
    sock.send(delta(100, [row("Chat", "5", { title: "old" })])); // older
    sock.send(delta(102, [row("Chat", "5", { title: "x" })], "6")); // another anchor
    sock.send({ type: "system", message: "marker" });
    const seen: unknown[] = [];
    conn.onSystem((m) => seen.push(m));
    await waitFor(() => seen.length === 1, "marker");
    assert.equal(sub.getState(), s1);
    assert.equal(sub.getState()!.title, "renamed");
  });

  it("rebuilds on deltas with structural sharing, deletes and FK moves", async (t) => {
    const { sub, sock } = await readyChat(t);
    const s0 = sub.getState()!;
    sock.send(
      delta(101, [
        row("Message", "51", { id: 51, chatId: 5, sender: 1, senderId: 1, text: "hi" }),
        row("Chat", "5", { messages: [50, 51] }),
      ]),
    );
    await waitFor(() => sub.getState() !== s0, "delta 101");
    const s1 = sub.getState()!;
    assert.equal(s1.members, s0.members);
    assert.equal(s1.messages[0], s0.messages[0]);
    assert.equal(s1.messages[1].sender, s1.members[0]);

    sock.send(delta(102, [tomb("User", "1")]));
    await waitFor(() => sub.getState() !== s1, "delta 102");
    const s2 = sub.getState()!;
    assert.deepEqual(s2.members.map((u: Obj) => u.id), [2]);
    assert.equal(s2.members[0], s1.members[1]);
    assert.equal(s2.messages[1].sender, null);
    assert.equal(s2.messages[0], s1.messages[0]);
  });

  it("serves list channels: anchors add, remove and reorder", async (t) => {
    const { srv, connect } = await setup(t);
    const conn = connect();
    const sub = conn.subscribe<Obj[]>("ChatList", {}, CHAT_LIST_MODEL);
    const sock = await srv.accept();
    await sock.handshake();
    await sock.next("sub");
    assert.equal(sub.getState(), null);
    sock.send({ type: "anchors", sub: sub.id, ids: ["9", "5"] });
    for (const id of [9, 5]) {
      sock.send({ type: "snapshot", sub: sub.id, anchor: String(id), version: 10, reset: true, more: false, instances: chatRows(id) });
    }
    sock.send({ type: "done", sub: sub.id });
    await waitFor(() => sub.ready, "ready");
    const l0 = sub.getState()!;
    assert.deepEqual(l0.map((c) => c.id), [9, 5]);

    sock.send({ type: "anchors", sub: sub.id, ids: ["5", "9", "2"] });
    sock.send({ type: "snapshot", sub: sub.id, anchor: "2", version: 20, reset: true, more: false, instances: chatRows(2) });
    await waitFor(() => sub.getState()!.length === 3, "three chats");
    const l1 = sub.getState()!;
    assert.deepEqual(l1.map((c) => c.id), [5, 9, 2]);
    assert.equal(l1[0], l0[1], "a reordered anchor keeps its identity");
    assert.equal(l1[1], l0[0]);

    sock.send(delta(11, [row("Chat", "5", { title: "five" })], "5", "ChatList"));
    await waitFor(() => sub.getState()![0]!.title === "five", "delta on 5");
    const l2 = sub.getState()!;
    assert.equal(l2[1], l1[1]);
    assert.equal(l2[2], l1[2]);

    sock.send({ type: "anchors", sub: sub.id, ids: ["2", "5"] });
    await waitFor(() => sub.getState()!.length === 2, "removal");
    const l3 = sub.getState()!;
    assert.deepEqual(l3.map((c) => c.id), [2, 5]);
    assert.equal(l3[1], l2[0]);
    sock.send(delta(11, [row("Chat", "9", { title: "gone" })], "9", "ChatList"));
    sock.send({ type: "anchors", sub: sub.id, ids: ["2", "5"] });
    const states: unknown[] = [];
    sub.subscribe((s) => states.push(s));
    // A marker sent after them: once it applied, the frames before it were
    // handled (frames are handled in order), with no sleep.
    sock.send(delta(12, [row("Chat", "5", { title: "marker" })], "5", "ChatList"));
    await waitFor(() => sub.getState()![1]!.title === "marker", "the marker delta");
    const l4 = sub.getState()!;
    assert.deepEqual(l4.map((c) => c.id), [2, 5], "a delta of a dropped anchor does not bring it back");
    assert.equal(l4[0], l3[0], "the same order keeps the list's entries");
    assert.equal(states.length, 1, "only the marker changed the state");
  });

  for (const [name, drop] of [
    ["the TCP connection drops (1006)", (s: FakeSocket) => s.terminate()],
    ["the server closes with 4008", (s: FakeSocket) => s.close(4008, "client too slow; resume")],
    ["the server shuts down (1001)", (s: FakeSocket) => s.close(1001, "server shutting down")],
  ] as const) {
    it(`reconnects and resumes with since when ${name}`, async (t) => {
      const { srv, conn, sub, sock } = await readyChat(t);
      sock.send(delta(101, [row("Chat", "5", { title: "t101" })]));
      sock.send(delta(102, [row("Chat", "5", { title: "t102" })]));
      await waitFor(() => sub.getState()!.title === "t102", "deltas");
      const before = sub.getState()!;
      const subStatuses: string[] = [];
      sub.onStatus((s) => subStatuses.push(s));

      drop(sock);
      await waitFor(() => conn.status === "reconnecting", "reconnecting");
      assert.equal(sub.status, "reconnecting");
      assert.equal(sub.getState(), before, "the state is kept while reconnecting");

      const sock2 = await srv.accept();
      await sock2.handshake();
      assert.deepEqual(await sock2.next("sub"), {
        type: "sub",
        id: sub.id,
        channel: "ChatChannel",
        params: { chatId: 5 },
        since: { "5": 102 },
      });
      // The resume: what changed after 102, merged; then a delta the client
      // already has (sent again around the reconnect) and a new one.
      sock2.send({
        type: "snapshot",
        sub: sub.id,
        anchor: "5",
        version: 103,
        reset: false,
        more: false,
        instances: [tomb("Message", "50"), row("Chat", "5", { title: "t103", messages: [] })],
      });
      sock2.send({ type: "done", sub: sub.id });
      sock2.send(delta(103, [row("Chat", "5", { title: "duplicate" })]));
      sock2.send(delta(104, [row("Chat", "5", { title: "t104" })]));
      await waitFor(() => sub.getState()!.title === "t104", "t104");
      const after = sub.getState()!;
      assert.deepEqual(after.messages, []);
      assert.equal(after.members, before.members, "unchanged parts keep their identity across the resume");
      assert.deepEqual(subStatuses, ["reconnecting", "subscribing", "ready"]);
      assert.equal(conn.status, "open");

      // The duplicate was ignored: t103 was followed directly by t104.
      const titles: string[] = [];
      sub.subscribe((s) => titles.push(s!.title));
      sock2.send(delta(104, [row("Chat", "5", { title: "dup104" })]));
      sock2.send(delta(105, [row("Chat", "5", { title: "t105" })]));
      await waitFor(() => titles.length === 1, "t105");
      assert.deepEqual(titles, ["t105"]);
    });
  }

  it("keeps retrying with backoff while the server refuses, then resumes", async (t) => {
    const { srv, sub, sock, conn } = await readyChat(t);
    sock.terminate();
    // Two attempts that die before welcome.
    for (let i = 0; i < 2; i++) {
      const s = await srv.accept();
      await s.next("hello");
      s.terminate();
    }
    const s3 = await srv.accept();
    await s3.handshake();
    assert.deepEqual((await s3.next("sub")).since, { "5": 100 });
    assert.equal(conn.status, "open");
    assert.equal(sub.status, "subscribing");
  });

  it("resumes only anchors whose snapshot was complete", async (t) => {
    const { srv, connect } = await setup(t);
    const conn = connect();
    const sub = conn.subscribe<Obj[]>("ChatList", {}, CHAT_LIST_MODEL);
    const sock = await srv.accept();
    await sock.handshake();
    await sock.next("sub");
    sock.send({ type: "anchors", sub: sub.id, ids: ["5", "6", "7"] });
    for (const id of [5, 6]) {
      sock.send({ type: "snapshot", sub: sub.id, anchor: String(id), version: id * 10, reset: true, more: false, instances: chatRows(id) });
    }
    const [c7] = chatRows(7);
    sock.send({ type: "snapshot", sub: sub.id, anchor: "7", version: 70, reset: true, more: true, instances: [c7] });
    await waitFor(() => sub.getState()?.length === 3, "partial state");
    sock.terminate();

    // 7 never completed. 6 is answered afresh (reset) in batches, and the
    // socket drops in the middle: 6 must not be resumed from 60 any more.
    const sock2 = await srv.accept();
    await sock2.handshake();
    assert.deepEqual((await sock2.next("sub")).since, { "5": 50, "6": 60 });
    const [c6] = chatRows(6, "six again");
    sock2.send({ type: "snapshot", sub: sub.id, anchor: "6", version: 61, reset: true, more: true, instances: [c6] });
    await waitFor(() => sub.getState()?.[1]?.title === "six again", "partial reset");
    sock2.terminate();

    const sock3 = await srv.accept();
    await sock3.handshake();
    assert.deepEqual((await sock3.next("sub")).since, { "5": 50 });
  });

  it("does not reconnect after 4001 and reports unauthenticated", async (t) => {
    const { srv, connect } = await setup(t);
    t.mock.timers.enable({ apis: ["setTimeout"] }); // the client's timers wait for tick
    const conn = connect({ token: "bad" });
    const sub = conn.subscribe("ChatChannel", { chatId: 5 }, CHAT_MODEL);
    const errors: RxError[] = [];
    conn.onError((e) => errors.push(e));
    const sock = await srv.accept();
    await sock.next("hello");
    sock.send({ type: "error", code: "unauthenticated", message: "invalid or expired token" });
    sock.close(4001, "authentication failed");
    await waitFor(() => conn.status === "unauthenticated", "unauthenticated");
    assert.ok(conn.error instanceof RxError);
    assert.equal(conn.error.code, "unauthenticated");
    assert.equal(conn.error.message, "invalid or expired token");
    assert.equal(conn.error.closeCode, 4001);
    assert.equal(errors.length, 1);
    assert.equal(sub.status, "error");
    assert.equal(sub.error, conn.error);
    await assert.rejects(sub.call("sendMessage", ["x"]), (e: unknown) => e instanceof RxError && e.code === "unauthenticated");
    t.mock.timers.tick(60_000); // past any backoff
    srv.expectNoConnection();
    t.mock.timers.reset();

    // Told to try again (say, with a refreshed session cookie), it does.
    conn.reconnect();
    const sock2 = await srv.accept();
    await sock2.handshake();
    assert.equal((await sock2.next("sub")).id, sub.id);
    await waitFor(() => sub.status === "subscribing", "subscribing");
    assert.equal(conn.error, null);
  });

  for (const code of [4002, 1008, 1009]) {
    it(`stops with status closed and an error after ${code}`, async (t) => {
      const { srv, conn, sub, sock } = await readyChat(t);
      t.mock.timers.enable({ apis: ["setTimeout"] });
      sock.close(code, "reason " + code);
      await waitFor(() => conn.status === "closed", "closed");
      assert.equal(conn.error?.code, "bad_request");
      assert.equal(conn.error?.closeCode, code);
      assert.equal(conn.error?.message, "reason " + code);
      assert.equal(sub.status, "error");
      t.mock.timers.tick(60_000); // past any backoff
      srv.expectNoConnection();
    });
  }

  it("stops without error when the server closes normally (1000)", async (t) => {
    const { srv, conn, sub, sock } = await readyChat(t);
    t.mock.timers.enable({ apis: ["setTimeout"] });
    sock.close(1000);
    await waitFor(() => conn.status === "closed", "closed");
    assert.equal(conn.error, null);
    assert.equal(sub.status, "closed");
    assert.notEqual(sub.getState(), null);
    t.mock.timers.tick(60_000); // past any backoff
    srv.expectNoConnection();
  });

  it("returns to idle once every subscription of a stopped connection is released", async (t) => {
    const { srv, conn, sub, sock } = await readyChat(t);
    sock.close(4001);
    await waitFor(() => conn.status === "unauthenticated", "unauthenticated");
    sub.close();
    await waitFor(() => conn.status === "idle", "idle");
    assert.equal(conn.error, null);
    conn.subscribe("ChatChannel", { chatId: 5 }, CHAT_MODEL);
    await (await srv.accept()).next("hello");
  });

  it("resolves and rejects action calls with the server's code", async (t) => {
    const { sub, sock } = await readyChat(t);
    const ok = sub.call<Obj>("sendMessage", ["hello"]);
    const call = await sock.next("call");
    assert.deepEqual(call, { type: "call", id: call.id, sub: sub.id, action: "sendMessage", args: ["hello"] });
    const bad = sub.call("sendMessage", [1]);
    const call2 = await sock.next("call");
    const unknown = sub.call("nope");
    const call3 = await sock.next("call");
    assert.deepEqual(call3.args, []);
    assert.equal(new Set([call.id, call2.id, call3.id]).size, 3);

    // Answers in another order than the calls.
    sock.send({ type: "result", id: call2.id, error: { code: "bad_request", message: "argument 1 (text): want string, got number" } });
    sock.send({ type: "result", id: call3.id, error: { code: "unknown_action", message: "no action nope" } });
    sock.send({ type: "result", id: call.id, value: { id: 11, chatId: 5, text: "hello" } });
    assert.deepEqual(await ok, { id: 11, chatId: 5, text: "hello" });
    await assert.rejects(bad, (e: unknown) => {
      assert.ok(e instanceof RxError);
      assert.equal(e.code, "bad_request");
      assert.equal(e.message, "argument 1 (text): want string, got number");
      return true;
    });
    await assert.rejects(unknown, (e: unknown) => e instanceof RxError && e.code === "unknown_action");
  });

  it("maps error codes it does not know to internal", async (t) => {
    const { sub, sock } = await readyChat(t);
    const p = sub.call("x");
    const c = await sock.next("call");
    sock.send({ type: "result", id: c.id, error: { code: "teapot", message: "short and stout" } });
    await assert.rejects(p, (e: unknown) => e instanceof RxError && e.code === "internal" && e.message === "teapot: short and stout");
  });

  it("rejects calls in flight when the socket closes and sends later calls after resubscribing", async (t) => {
    const { srv, sub, sock } = await readyChat(t);
    const lost = sub.call("slow", []);
    await sock.next("call");
    sock.terminate();
    await assert.rejects(lost, (e: unknown) => {
      assert.ok(e instanceof RxError);
      assert.equal(e.code, "internal");
      assert.equal(e.message, "connection lost");
      return true;
    });
    await waitFor(() => sub.status === "reconnecting", "reconnecting");
    const later = sub.call<number>("add", [1, 2]);
    const sock2 = await srv.accept();
    await sock2.handshake();
    await sock2.next("sub");
    const c = await sock2.next("call");
    assert.equal(c.action, "add");
    sock2.send({ type: "result", id: c.id, value: 3 });
    assert.equal(await later, 3);
  });

  it("refuses a call larger than the server's read limit instead of sending it", async (t) => {
    const { srv, connect } = await setup(t);
    const conn = connect();
    const sub = conn.subscribe("ChatChannel", { chatId: 5 }, CHAT_MODEL);
    const sock = await srv.accept();
    await sock.next("hello");
    sock.send({ type: "welcome", v: 1, user: "7", maxMessage: 200 });
    await sock.next("sub");
    await assert.rejects(sub.call("sendMessage", ["é".repeat(100)]), (e: unknown) => e instanceof RxError && e.code === "bad_request");
    const ok = sub.call("sendMessage", ["short"]);
    const c = await sock.next("call");
    assert.deepEqual(c.args, ["short"]);
    sock.send({ type: "result", id: c.id, value: null });
    assert.equal(await ok, null);
    assert.equal(conn.status, "open");
  });

  it("rejects a call for a subscription it does not hold", async (t) => {
    const { conn, sub } = await readyChat(t);
    await assert.rejects(conn.call("999", "x", []), (e: unknown) => e instanceof RxError && e.code === "not_found");
    sub.close();
    await assert.rejects(sub.call("x"), (e: unknown) => e instanceof RxError && e.code === "not_found");
  });

  it("resubscribes with since when a delta shows a gap (from above the version held)", async (t) => {
    const { sub, sock } = await readyChat(t);
    sock.send({ ...delta(101, [row("Chat", "5", { title: "renamed" })]), from: 100 });
    await waitFor(() => sub.getState()!.title === "renamed", "delta applied");
    sock.send({ ...delta(105, [row("Chat", "5", { title: "past a gap" })]), from: 104 });
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub.id });
    assert.deepEqual(await sock.next("sub"), {
      type: "sub",
      id: sub.id,
      channel: "ChatChannel",
      params: { chatId: 5 },
      since: { "5": 101 },
    });
    assert.equal(sub.getState()!.title, "renamed", "the delta past the gap was not applied");
  });

  it("delivers runtime state and system messages", async (t) => {
    const { conn, sub, sock } = await readyChat(t);
    const seen: [Obj, string][] = [];
    sub.onRuntime((r, key) => seen.push([r, key]));
    const system: unknown[] = [];
    conn.onSystem((m) => system.push(m));
    sock.send({ type: "runtime", sub: sub.id, key: "typing", value: ["alice"] });
    sock.send({ type: "runtime", sub: sub.id, key: "online", value: 2 });
    sock.send({ type: "runtime", sub: "999", key: "typing", value: ["nobody"] });
    sock.send({ type: "system", message: "maintenance at 22:00" });
    await waitFor(() => system.length === 1, "system");
    assert.deepEqual(sub.runtime, { typing: ["alice"], online: 2 });
    assert.deepEqual(seen.map(([, k]) => k), ["typing", "online"]);
    assert.notEqual(seen[0]![0], seen[1]![0], "each change is a new object");
    assert.deepEqual(system, ["maintenance at 22:00"]);
  });

  it("ends a subscription the server ends, and resubscribes on overloaded", async (t) => {
    const { conn, sub, sock } = await readyChat(t);
    const other = conn.subscribe<Obj>("ChatChannel", { chatId: 6 }, CHAT_MODEL);
    await sock.next("sub");
    sock.send({ type: "error", sub: sub.id, code: "overloaded", message: "fell behind" });
    assert.deepEqual(await sock.next("sub"), {
      type: "sub",
      id: sub.id,
      channel: "ChatChannel",
      params: { chatId: 5 },
      since: { "5": 100 },
    });
    assert.equal(sub.status, "subscribing");

    sock.send({ type: "error", sub: other.id, code: "forbidden", message: "not a member of chat 6" });
    await waitFor(() => other.status === "error", "error");
    assert.equal(other.error?.code, "forbidden");
    assert.equal(other.error?.message, "not a member of chat 6");
    other.close(); // the server already forgot it: no unsub
    sub.close();
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub.id });
    await sock.expectSilence();
  });

  it("connects on the first subscription and disconnects after the last, with a grace delay", async (t) => {
    const { srv, connect } = await setup(t);
    const conn = connect({ idleTimeout: 150 });
    srv.expectNoConnection(); // not before the first subscription
    const a = conn.subscribe("ChatChannel", { chatId: 5 }, CHAT_MODEL);
    const sock = await srv.accept();
    await sock.handshake();
    await sock.next("sub");
    const b = conn.subscribe("ChatChannel", { chatId: 6 }, CHAT_MODEL);
    await sock.next("sub");
    a.close();
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: a.id });
    // The grace delay runs on a mocked clock from here: advancing it past
    // the delay runs a pending idle timer at once, with no wait.
    t.mock.timers.enable({ apis: ["setTimeout"] });
    b.close();
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: b.id });
    // Subscribing again within the grace delay reuses the socket.
    const c = conn.subscribe("ChatChannel", { chatId: 7 }, CHAT_MODEL);
    assert.equal((await sock.next("sub")).id, c.id);
    t.mock.timers.tick(200);
    assert.equal(conn.status, "open", "c keeps the socket open past the grace delay");
    c.close();
    await sock.next("unsub");
    t.mock.timers.tick(150); // the grace delay
    assert.equal(await sock.closed, 1000);
    assert.equal(conn.status, "idle");
    t.mock.timers.tick(60_000);
    srv.expectNoConnection();
    t.mock.timers.reset();
    // And the next subscription connects again.
    conn.subscribe("ChatChannel", { chatId: 8 }, CHAT_MODEL);
    const sock2 = await srv.accept();
    await sock2.handshake();
    assert.equal((await sock2.next("sub")).params.chatId, 8);
  });

  it("close() ends every subscription and rejects pending calls, and can be used again", async (t) => {
    const { srv, conn, sub, sock } = await readyChat(t);
    const pending = sub.call("slow");
    await sock.next("call");
    conn.close();
    assert.equal(conn.status, "idle");
    assert.equal(sub.status, "closed");
    await assert.rejects(pending, (e: unknown) => e instanceof RxError && e.code === "internal");
    assert.equal(await sock.closed, 1000);
    conn.subscribe("ChatChannel", { chatId: 5 }, CHAT_MODEL);
    await (await srv.accept()).next("hello");
  });

  it("shares one connection per url and token", async (t) => {
    const { srv } = await setup(t);
    const opts = testOptions({ token: "a" });
    const a1 = Connection.get(srv.url, opts);
    const a2 = Connection.get(srv.url, { token: "a" });
    const b = Connection.get(srv.url, testOptions({ token: "b" }));
    t.after(() => {
      a1.close();
      b.close();
    });
    assert.equal(a1, a2);
    assert.notEqual(a1, b);
    assert.notEqual(Connection.get(srv.url + "?x", opts), a1);
    a1.subscribe("ChatChannel", { chatId: 5 }, CHAT_MODEL);
    a2.subscribe("ChatChannel", { chatId: 6 }, CHAT_MODEL);
    const sock = await srv.accept();
    await sock.handshake();
    await sock.next("sub");
    await sock.next("sub");
    srv.expectNoConnection();
  });

  it("computes backoff with full jitter under a cap", () => {
    assert.equal(backoffDelay(0, 100, 10_000, () => 0), 0);
    assert.equal(backoffDelay(0, 100, 10_000, () => 0.5), 50);
    assert.equal(backoffDelay(3, 100, 10_000, () => 0.5), 400);
    assert.equal(backoffDelay(20, 100, 10_000, () => 0.5), 5000);
    assert.equal(backoffDelay(5000, 100, 10_000, () => 0.999), 9990);
  });

  it("ignores deltas until the resubscription's snapshot has arrived", async (t) => {
    const { sub, sock } = await readyChat(t);
    sock.send({ type: "error", sub: sub.id, code: "overloaded", message: "fell behind" });
    assert.deepEqual((await sock.next("sub")).since, { "5": 100 });
    const titles: string[] = [];
    sub.subscribe((s) => titles.push(s!.title));
    // A delta for another subscriber of the stream on this socket, sent
    // before this subscription was registered again at version 101: the
    // snapshot below contains it.
    sock.send(delta(101, [row("Chat", "5", { title: "not for this subscription" })]));
    sock.send({ type: "snapshot", sub: sub.id, anchor: "5", version: 101, reset: false, more: false, instances: [row("Chat", "5", { title: "t101" })] });
    sock.send({ type: "done", sub: sub.id });
    await waitFor(() => sub.status === "ready", "ready");
    sock.send(delta(102, [row("Chat", "5", { title: "t102" })]));
    await waitFor(() => titles.length === 2, "t102");
    assert.deepEqual(titles, ["t101", "t102"]);
  });
});
