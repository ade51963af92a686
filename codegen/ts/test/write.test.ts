// Optimistic client writes (save, create, delete) and presence, against the
// fake server: exact frame order, so the confirm and rollback steps are
// checked one by one.

import assert from "node:assert/strict";
import { describe, it, type TestContext } from "node:test";
import { Connection, RxError, Store, type Instance } from "../src/runtime/index.js";
import { ChatChannel, type Chat } from "./chat.generated.js";
import { FakeServer, testOptions, waitFor, type Frame, type FakeSocket } from "./fake-server.js";
import { CHAT_MODEL, row, tomb, type Obj } from "./models.js";

function rows(): Instance[] {
  return [
    row("Chat", "5", { id: 5, title: "hi", members: [1, 2], messages: [50, 51, 52] }),
    row("User", "1", { id: 1, name: "alice" }),
    row("User", "2", { id: 2, name: "bob" }),
    row("Message", "50", { id: 50, chatId: 5, sender: 2, senderId: 2, text: "one" }),
    row("Message", "51", { id: 51, chatId: 5, sender: 1, senderId: 1, text: "two" }),
    row("Message", "52", { id: 52, chatId: 5, sender: 2, senderId: 2, text: "three" }),
  ];
}

interface Env {
  chat: ChatChannel;
  sock: FakeSocket;
  sub: Frame;
  states: (Chat | null)[];
  version: number;
  /** The state as JSON. */
  json(): string;
  delta(instances: Instance[]): void;
  /** Resolves once every frame sent before it has been handled. */
  flush(): Promise<void>;
}

async function setup(t: TestContext): Promise<Env> {
  const srv = await FakeServer.start();
  const conn = new Connection(srv.url, testOptions());
  t.after(async () => {
    conn.close();
    await srv.stop();
  });
  const chat = new ChatChannel(conn, { chatId: 5 });
  const states: (Chat | null)[] = [];
  t.after(chat.subscribe((s) => states.push(s)));
  const sock = await srv.accept();
  await sock.handshake("1");
  const sub = await sock.next("sub");
  sock.send({ type: "snapshot", sub: sub.id, anchor: "5", version: 1, reset: true, more: false, instances: rows() });
  sock.send({ type: "done", sub: sub.id });
  await waitFor(() => chat.ready, "ready");
  const env: Env = {
    chat,
    sock,
    sub,
    states,
    version: 1,
    json: () => JSON.stringify(chat.getState()),
    delta(instances) {
      sock.send({ type: "delta", channel: "ChatChannel", anchor: "5", version: ++env.version, instances });
    },
    async flush() {
      // Frames are handled in order: once a system message sent after
      // them arrives, everything before it has been applied.
      let seen = false;
      const off = conn.onSystem(() => (seen = true));
      sock.send({ type: "system", message: "flush" });
      await waitFor(() => seen, "flush");
      off();
    },
  };
  return env;
}

const texts = (s: Chat | null): string[] => (s?.messages ?? []).map((m) => `${m.id}:${m.text}`);

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof RxError && e.code === code);
}

describe("optimistic writes", () => {
  it("save: shown at once, then the server's value; a refusal restores the state exactly", async (t) => {
    const e = await setup(t);
    const p = e.chat.save("Message", 51, { text: "edited" });
    assert.deepEqual(texts(e.chat.getState()), ["50:one", "51:edited", "52:three"], "applied before any answer");
    const f = await e.sock.next("save");
    assert.deepEqual(f, { type: "save", id: f.id, sub: e.sub.id, layer: "Message", row: "51", fields: { text: "edited" } });
    // The server (its hook trimmed the text) sends the delta, then the reply.
    e.delta([row("Message", "51", { text: "edit" })]);
    e.sock.send({ type: "result", id: f.id, value: { row: "51" } });
    await p;
    assert.deepEqual(texts(e.chat.getState()), ["50:one", "51:edit", "52:three"]);

    const before = e.json();
    const untouched = e.chat.getState()!.members;
    const p2 = e.chat.save("Message", 51, { text: "nope" });
    assert.equal(e.chat.getState()!.messages[1]!.text, "nope");
    const f2 = await e.sock.next("save");
    e.sock.send({ type: "result", id: f2.id, error: { code: "forbidden", message: "not yours" } });
    await rejectsWith(p2, "forbidden");
    assert.equal(e.json(), before, "rolled back exactly");
    assert.equal(e.chat.getState()!.members, untouched, "untouched parts kept their identity throughout");
  });

  it("create: a temporary row, replaced by the server's in one step; a refusal removes it", async (t) => {
    const e = await setup(t);
    const before = e.json();
    const p = e.chat.create("Chat.messages", 5, { text: "hi" });
    const temp = e.chat.getState()!.messages[3]!;
    assert.ok(temp.id < 0, "a temporary negative key");
    assert.deepEqual({ ...temp }, { id: temp.id, chatId: 5, sender: null, senderId: 0, text: "hi" });
    const f = await e.sock.next("create");
    assert.deepEqual(f, { type: "create", id: f.id, sub: e.sub.id, layer: "Message", relation: "Chat.messages", parent: "5", fields: { text: "hi" } });

    const seen = e.states.length;
    e.delta([row("Message", "53", { id: 53, chatId: 5, sender: 1, senderId: 1, text: "hi" }), row("Chat", "5", { messages: [50, 51, 52, 53] })]);
    await e.flush();
    assert.equal(e.states.length, seen, "the write's delta waits for the reply");
    assert.equal(e.chat.getState()!.messages[3], temp);
    e.sock.send({ type: "result", id: f.id, value: { row: "53" } });
    assert.equal(await p, 53);
    assert.deepEqual(texts(e.chat.getState()), ["50:one", "51:two", "52:three", "53:hi"]);
    assert.equal(e.chat.getState()!.messages[3]!.sender?.name, "alice");
    for (const s of e.states) {
      const ids = (s?.messages ?? []).map((m) => m.id);
      assert.ok(!(ids.includes(53) && ids.some((id) => id < 0)), `a state showed both rows: ${ids}`);
    }

    const mid = e.json();
    const p2 = e.chat.create("Chat.messages", 5, { text: "spam" });
    assert.equal(e.chat.getState()!.messages.length, 5);
    const f2 = await e.sock.next("create");
    e.sock.send({ type: "result", id: f2.id, error: { code: "bad_request", message: "no spam" } });
    await rejectsWith(p2, "bad_request");
    assert.equal(e.json(), mid, "the temporary row left no trace");
    assert.notEqual(mid, before);
  });

  it("delete: hidden at once; a refusal returns the row to its place; a confirmation removes it", async (t) => {
    const e = await setup(t);
    const before = e.json();
    const p = e.chat.delete("Message", 51);
    assert.deepEqual(texts(e.chat.getState()), ["50:one", "52:three"]);
    const f = await e.sock.next("delete");
    assert.deepEqual(f, { type: "delete", id: f.id, sub: e.sub.id, layer: "Message", row: "51" });
    e.sock.send({ type: "result", id: f.id, error: { code: "forbidden", message: "no" } });
    await rejectsWith(p, "forbidden");
    assert.equal(e.json(), before, "back in its original position");

    const p2 = e.chat.delete("Message", 51);
    const f2 = await e.sock.next("delete");
    e.delta([tomb("Message", "51"), row("Chat", "5", { messages: [50, 52] })]);
    e.sock.send({ type: "result", id: f2.id, value: { row: "51" } });
    await p2;
    assert.deepEqual(texts(e.chat.getState()), ["50:one", "52:three"]);
  });

  it("a concurrent write by someone else: the optimistic value shows until the reply, then the committed one", async (t) => {
    const e = await setup(t);
    const p = e.chat.save("Message", 50, { text: "mine" });
    const f = await e.sock.next("save");
    // Our write committed first, theirs after: both deltas come before our reply.
    e.delta([row("Message", "50", { text: "mine" })]);
    e.delta([row("Message", "50", { text: "theirs" })]);
    await e.flush();
    assert.equal(e.chat.getState()!.messages[0]!.text, "mine");
    e.sock.send({ type: "result", id: f.id, value: { row: "50" } });
    await p;
    assert.equal(e.chat.getState()!.messages[0]!.text, "theirs", "the loser sees the winner's value");
  });

  it("a delta with no write in flight shows at once; a write of a row not created yet is refused", async (t) => {
    const e = await setup(t);
    e.delta([row("Chat", "5", { title: "renamed" })]);
    await waitFor(() => e.chat.getState()?.title === "renamed", "the delta");
    const p = e.chat.create("Chat.messages", 5, { text: "x" });
    const temp = e.chat.getState()!.messages[3]!.id;
    await rejectsWith(e.chat.save("Message", temp, { text: "y" }), "bad_request");
    await rejectsWith(e.chat.delete("Message", temp), "bad_request");
    const f = await e.sock.next("create");
    e.sock.send({ type: "result", id: f.id, error: { code: "forbidden", message: "no" } });
    await rejectsWith(p, "forbidden");
  });

  it("a lost connection rejects the write and restores the state", async (t) => {
    const e = await setup(t);
    const before = e.json();
    const p = e.chat.save("Chat", 5, { title: "lost" });
    assert.equal(e.chat.getState()!.title, "lost");
    await e.sock.next("save");
    e.sock.terminate();
    await rejectsWith(p, "internal");
    assert.equal(e.json(), before);
  });

  it("writes need a subscription", async () => {
    const chat = new ChatChannel({ url: "ws://127.0.0.1:1/rx", ...testOptions() }, { chatId: 5 });
    await rejectsWith(chat.save("Message", 1, { text: "x" }), "not_found");
  });
});

describe("presence", () => {
  it("follows the presence frames of the subscription's stream", async (t) => {
    const e = await setup(t);
    const heard: string[] = [];
    e.chat.onPresence((users, anchor) => heard.push(`${anchor}:${users.map((u) => `${u.user}×${u.connections}`).join(",")}`));
    assert.deepEqual(e.chat.presence, []);
    e.sock.send({ type: "presence", sub: e.sub.id, anchor: "5", users: [{ user: "1", connections: 1 }] });
    e.sock.send({ type: "presence", sub: e.sub.id, anchor: "5", users: [{ user: "1", connections: 1 }, { user: "2", connections: 2 }] });
    await waitFor(() => e.chat.presence.length === 2, "presence");
    assert.deepEqual(e.chat.presence, [{ user: "1", connections: 1 }, { user: "2", connections: 2 }]);
    assert.deepEqual(e.chat.presenceOf(5), e.chat.presence);
    assert.deepEqual(heard, ["5:1×1", "5:1×1,2×2"]);
  });
});

describe("Store patches", () => {
  const build = (s: Store): Obj => s.build(CHAT_MODEL, "Chat", "5") as Obj;
  const store = (): Store => {
    const s = new Store();
    s.apply(rows());
    return s;
  };

  it("a save follows server changes underneath and leaves them when removed", () => {
    const s = store();
    s.patch(1, { op: "save", type: "Message", id: "50", fields: { text: "mine" } });
    s.apply([row("Message", "50", { text: "server", senderId: 9 })]);
    assert.deepEqual({ ...build(s).messages[0], sender: null }, { id: 50, chatId: 5, sender: null, senderId: 9, text: "mine" });
    s.unpatch(1);
    assert.equal(build(s).messages[0].text, "server");
    assert.equal(s.patches, 0);
  });

  it("create puts the temporary key first when asked, on a to-one field too", () => {
    const s = store();
    const parent = { type: "Chat", id: "5", field: "messages", many: true, first: true };
    s.patch(1, { op: "create", type: "Message", id: "-1", ref: -1, fields: { id: -1, text: "new" }, parent });
    assert.deepEqual(build(s).messages.map((m: Obj) => m.id), [-1, 50, 51, 52]);
    s.patch(2, { op: "create", type: "User", id: "-2", ref: -2, fields: { id: -2, name: "tmp" }, parent: { type: "Message", id: "50", field: "sender", many: false, first: false } });
    assert.equal(build(s).messages[1].sender.name, "tmp");
    s.unpatch(2);
    s.unpatch(1);
    assert.equal(JSON.stringify(build(s)), JSON.stringify(build(store())));
  });

  it("a hidden row stays hidden across a reset and reappears in place when unpatched", () => {
    const s = store();
    s.patch(1, { op: "delete", type: "Message", id: "51" });
    s.clear();
    s.apply(rows());
    s.settle();
    assert.deepEqual(build(s).messages.map((m: Obj) => m.id), [50, 52]);
    assert.equal(s.has("Message", "51"), false);
    s.unpatch(1);
    assert.deepEqual(build(s).messages.map((m: Obj) => m.id), [50, 51, 52]);
  });
});
