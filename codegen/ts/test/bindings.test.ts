// The framework-agnostic store (channelStore) and the Vue and Svelte
// bindings, with the real vue and svelte packages (no DOM: vue's
// reactivity, effect scopes and watch; svelte/store's get and derived),
// against the fake server.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { get, derived } from "svelte/store";
import { effectScope, nextTick, shallowRef, watch } from "vue";
import { Connection, channelStore, type ChannelView } from "../src/runtime/index.js";
import { readableChannel } from "../src/runtime/svelte.js";
import { useChannel } from "../src/runtime/vue.js";
import { ChatChannel, type Chat, type ChatRuntime } from "./chat.generated.js";
import { FakeServer, testOptions, waitFor, type FakeSocket, type Frame } from "./fake-server.js";
import { chatRows, row } from "./models.js";

type View = ChannelView<Chat, ChatRuntime>;

async function setup(t: { after(fn: () => Promise<void>): void }) {
  const srv = await FakeServer.start();
  const conn = new Connection(srv.url, testOptions());
  t.after(async () => {
    conn.close();
    await srv.stop();
  });
  return { srv, conn };
}

// serve answers the subscription sub with chat id's snapshot and runtime.
function serve(sock: FakeSocket, sub: Frame, id: number): void {
  sock.send({ type: "snapshot", sub: sub.id, anchor: String(id), version: 1, reset: true, more: false, instances: chatRows(id) });
  sock.send({ type: "runtime", sub: sub.id, key: "typing", value: ["alice"] });
  sock.send({ type: "done", sub: sub.id });
}

describe("channelStore", () => {
  it("subscribes with the first listener, emits changed views only, unsubscribes with the last", async (t) => {
    const { srv, conn } = await setup(t);
    const channel = new ChatChannel(conn, { chatId: 5 });
    const store = channelStore(channel);
    assert.equal(store.getState().status, "idle");
    assert.equal(store.getState(), store.getState());

    const a: View[] = [];
    const b: View[] = [];
    const offA = store.subscribe((v) => a.push(v));
    const offB = store.subscribe((v) => b.push(v));
    const sock = await srv.accept();
    await sock.handshake();
    const sub = await sock.next("sub");
    serve(sock, sub, 5);
    await waitFor(() => store.getState().ready, "ready");
    const ready = store.getState();
    assert.equal(ready.state?.title, "chat 5");
    assert.deepEqual(ready.runtime, { typing: ["alice"] });
    assert.equal(a[a.length - 1], ready);
    assert.equal(b[b.length - 1], ready);
    for (let i = 1; i < a.length; i++) assert.notEqual(a[i], a[i - 1], "a view is emitted once");

    sock.send({ type: "delta", channel: "ChatChannel", anchor: "5", version: 2, instances: [row("Chat", "5", { title: "new" })] });
    await waitFor(() => a[a.length - 1]?.state?.title === "new", "delta");
    assert.equal(store.getState().state?.members, ready.state?.members, "structural sharing");

    offA();
    offA(); // twice is harmless
    assert.equal(channel.status, "ready", "b still holds the subscription");
    offB();
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub.id });
    assert.equal(store.getState().status, "idle");
  });

  it("of null stays idle", () => {
    const store = channelStore(null);
    const off = store.subscribe(() => assert.fail("no change expected"));
    assert.equal(store.getState().status, "idle");
    assert.equal(store.getState().state, null);
    off();
  });
});

describe("svelte readableChannel", () => {
  it("keeps the store contract: get, derived, subscribe calls at once", async (t) => {
    const { srv, conn } = await setup(t);
    const channel = new ChatChannel(conn, { chatId: 5 });
    const chat = readableChannel(channel);
    const title = derived(chat, ($chat) => $chat.state?.title ?? "(loading)");

    const titles: string[] = [];
    const off = title.subscribe((v) => titles.push(v));
    assert.deepEqual(titles, ["(loading)"], "run is called at once");
    const sock = await srv.accept();
    await sock.handshake();
    const sub = await sock.next("sub");
    serve(sock, sub, 5);
    await waitFor(() => titles[titles.length - 1] === "chat 5", "snapshot");
    assert.equal(get(chat).ready, true);
    assert.equal(get(chat).state?.title, "chat 5");
    assert.deepEqual(get(chat).runtime, { typing: ["alice"] });

    sock.send({ type: "delta", channel: "ChatChannel", anchor: "5", version: 2, instances: [row("Chat", "5", { title: "new" })] });
    await waitFor(() => titles[titles.length - 1] === "new", "delta");
    off();
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub.id });
    assert.equal(channel.status, "idle");
  });
});

describe("vue useChannel", () => {
  it("is a shallow ref that follows the channel while its scope lives", async (t) => {
    const { srv, conn } = await setup(t);
    const channel = new ChatChannel(conn, { chatId: 5 });
    const scope = effectScope();
    const titles: (string | null)[] = [];
    const chat = scope.run(() => {
      const chat = useChannel(channel);
      watch(() => chat.value.state?.title ?? null, (v) => titles.push(v), { flush: "sync" });
      return chat;
    })!;
    assert.equal(chat.value.status, "subscribing");
    const sock = await srv.accept();
    await sock.handshake();
    const sub = await sock.next("sub");
    serve(sock, sub, 5);
    await waitFor(() => chat.value.ready, "ready");
    assert.equal(chat.value.state?.title, "chat 5");
    assert.deepEqual(chat.value.runtime, { typing: ["alice"] });
    assert.equal(chat.value, channelStore(channel).getState());

    sock.send({ type: "delta", channel: "ChatChannel", anchor: "5", version: 2, instances: [row("Chat", "5", { title: "new" })] });
    await waitFor(() => chat.value.state?.title === "new", "delta");
    await nextTick();
    assert.deepEqual(titles, ["chat 5", "new"]);

    scope.stop();
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub.id });
    assert.equal(channel.status, "idle");
  });

  it("follows a ref of the channel: the old one unsubscribed, the new one subscribed", async (t) => {
    const { srv, conn } = await setup(t);
    const current = shallowRef<ChatChannel | null>(null);
    const scope = effectScope();
    const chat = scope.run(() => useChannel(current))!;
    assert.equal(chat.value.status, "idle");

    const five = new ChatChannel(conn, { chatId: 5 });
    current.value = five;
    const sock = await srv.accept();
    await sock.handshake();
    const sub5 = await sock.next("sub");
    serve(sock, sub5, 5);
    await waitFor(() => chat.value.state?.title === "chat 5", "chat 5");

    const six = new ChatChannel(conn, { chatId: 6 });
    current.value = six;
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub5.id });
    const sub6 = await sock.next("sub");
    assert.deepEqual(sub6.params, { chatId: 6 });
    serve(sock, sub6, 6);
    await waitFor(() => chat.value.state?.title === "chat 6", "chat 6");
    assert.equal(five.status, "idle");

    chat.stop();
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub6.id });
    scope.stop();
  });
});
