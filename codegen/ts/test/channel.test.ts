// ContextChannel through classes shaped like the generator's output (chat.generated.ts).

import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { Connection, RxError, type SubscriptionStatus } from "../src/runtime/index.js";
import { ChatChannel, ChatListChannel, type Chat, type ChatRuntime, type Message } from "./chat.generated.js";
import { FakeServer, testOptions, waitFor } from "./fake-server.js";
import { chatRows, row } from "./models.js";

// ---- tests ----

async function server(t: TestContext) {
  const srv = await FakeServer.start();
  t.after(() => srv.stop());
  return srv;
}

describe("ContextChannel", () => {
  it("subscribes with the first listener and unsubscribes after the last", async (t) => {
    const srv = await server(t);
    const conn = new Connection(srv.url, testOptions());
    t.after(() => conn.close());
    const chat = new ChatChannel(conn, { chatId: 5 });
    assert.equal(ChatChannel.channel, "ChatChannel");
    assert.equal(chat.status, "idle");
    assert.equal(chat.getState(), null);
    const statuses: SubscriptionStatus[] = [];
    chat.onStatus((s) => statuses.push(s));

    const seenA: (Chat | null)[] = [];
    const seenB: (Chat | null)[] = [];
    const offA = chat.subscribe((s) => seenA.push(s));
    const offB = chat.subscribe((s) => seenB.push(s));
    const sock = await srv.accept();
    await sock.handshake();
    const sub = await sock.next("sub");
    assert.deepEqual(sub, { type: "sub", id: sub.id, channel: "ChatChannel", params: { chatId: 5 } });

    sock.send({ type: "snapshot", sub: sub.id, anchor: "5", version: 1, reset: true, more: false, instances: chatRows(5) });
    sock.send({ type: "done", sub: sub.id });
    await waitFor(() => chat.ready, "ready");
    const state = chat.getState();
    assert.ok(state);
    assert.equal(state.members[1]?.name, "bob");
    assert.equal(state.messages[0]?.sender, state.members[1]);
    assert.deepEqual(seenA, [state]);
    assert.deepEqual(seenB, [state]);

    offA();
    offA(); // idempotent
    await sock.expectSilence();
    offB();
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub.id });
    assert.equal(chat.status, "idle");
    assert.equal(chat.getState(), null);
    assert.deepEqual(statuses, ["subscribing", "ready", "idle"]);
  });

  it("shares one socket between channels given the same url and token", async (t) => {
    const srv = await server(t);
    const opts = { url: srv.url, token: "shared-token", ...testOptions() };
    const a = new ChatChannel(opts, { chatId: 5 });
    const b = new ChatListChannel({ url: srv.url, token: "shared-token" });
    t.after(() => a.connection.close());
    assert.equal(a.connection, b.connection);
    const offA = a.subscribe(() => {});
    const offB = b.subscribe(() => {});
    const sock = await srv.accept();
    assert.equal((await sock.handshake()).token, "shared-token");
    assert.deepEqual(
      [(await sock.next("sub")).channel, (await sock.next("sub")).channel],
      ["ChatChannel", "ChatListChannel"],
    );
    srv.expectNoConnection();
    offA();
    offB();
    await sock.next("unsub");
    await sock.next("unsub");
    assert.equal(await sock.closed, 1000);
  });

  it("types actions: results resolve, errors reject with RxError", async (t) => {
    const srv = await server(t);
    const conn = new Connection(srv.url, testOptions());
    t.after(() => conn.close());
    const chat = new ChatChannel(conn, { chatId: 5 });
    await assert.rejects(chat.sendMessage("early"), (e: unknown) => e instanceof RxError && e.code === "not_found");

    chat.subscribe(() => {});
    const sock = await srv.accept();
    await sock.handshake();
    const sub = await sock.next("sub");

    const sent = chat.sendMessage("hello");
    const call = await sock.next("call");
    assert.deepEqual(call, { type: "call", id: call.id, sub: sub.id, action: "sendMessage", args: ["hello"] });
    sock.send({ type: "result", id: call.id, value: { id: 11, chatId: 5, sender: null, senderId: 7, text: "hello" } });
    const msg: Message = await sent;
    assert.equal(msg.text, "hello");

    const cleared = chat.clear();
    const call2 = await sock.next("call");
    sock.send({ type: "result", id: call2.id, error: { code: "forbidden", message: "only the owner may clear" } });
    await assert.rejects(cleared, (e: unknown) => {
      assert.ok(e instanceof RxError);
      assert.equal(e.code, "forbidden");
      assert.equal(e.message, "only the owner may clear");
      return true;
    });
  });

  it("exposes runtime state and list states", async (t) => {
    const srv = await server(t);
    const conn = new Connection(srv.url, testOptions());
    t.after(() => conn.close());
    const chat = new ChatChannel(conn, { chatId: 5 });
    const list = new ChatListChannel(conn);
    const runtimes: Partial<ChatRuntime>[] = [];
    chat.onRuntime((r) => runtimes.push(r));
    chat.subscribe(() => {});
    list.subscribe(() => {});
    const sock = await srv.accept();
    await sock.handshake();
    const s1 = await sock.next("sub");
    const s2 = await sock.next("sub");
    sock.send({ type: "runtime", sub: s1.id, key: "typing", value: ["bob"] });
    sock.send({ type: "anchors", sub: s2.id, ids: ["6", "5"] });
    sock.send({ type: "snapshot", sub: s2.id, anchor: "5", version: 1, reset: true, more: false, instances: chatRows(5) });
    sock.send({ type: "snapshot", sub: s2.id, anchor: "6", version: 1, reset: true, more: false, instances: chatRows(6) });
    sock.send({ type: "done", sub: s2.id });
    await waitFor(() => list.ready && runtimes.length === 1, "list and runtime");
    assert.deepEqual(chat.getRuntime(), { typing: ["bob"] });
    const chats: Chat[] | null = list.getState();
    assert.deepEqual(chats?.map((c) => c.id), [6, 5]);

    sock.send({ type: "delta", channel: "ChatListChannel", anchor: "6", version: 2, instances: [row("Chat", "6", { title: "six" })] });
    await waitFor(() => list.getState()?.[0]?.title === "six", "delta");
    assert.equal(list.getState()?.[1], chats?.[1]);
    assert.equal(chat.getState(), null, "the chat channel got no snapshot");
  });
});
