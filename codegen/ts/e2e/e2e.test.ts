// End-to-end: the classes makefrontend generated for
// testdata/codegen/e2eapp, against a live Go server started by
// codegen/e2e_test.go (RX_URL, RX_TOKEN, RX_CONTROL).
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { BoardChannel } from "../e2e-gen/e2eapp.channels.js";
import type { Board } from "../e2e-gen/e2eapp.interfaces.js";
import { RxError, type WebSocketConstructor } from "../e2e-gen/rxgorm/index.js";

const url = process.env.RX_URL!;
const token = process.env.RX_TOKEN!;
const control = process.env.RX_CONTROL!;

async function ctl(path: string): Promise<string> {
  const r = await fetch(control + path, { method: "POST" });
  const body = await r.text();
  assert.equal(r.status, 200, body);
  return body;
}

// when resolves with get() once pred holds for it, checking now and on
// every event listen reports; it fails after 10 s naming what it awaited.
function when<T>(get: () => T, listen: (f: () => void) => () => void, pred: (v: T) => boolean, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timeout waiting for ${what}: ${JSON.stringify(get())}`));
    }, 10000);
    const check = () => {
      const v = get();
      if (pred(v)) {
        clearTimeout(timer);
        queueMicrotask(() => off());
        resolve(v);
      }
    };
    const off = listen(check);
    check();
  });
}

// until resolves once pred holds for the channel's state.
function until(ch: BoardChannel, pred: (s: Board) => boolean, what: string): Promise<Board> {
  return when(() => ch.getState(), (f) => ch.subscribe(f), (s): s is Board => s !== null && pred(s), what) as Promise<Board>;
}

// untilRuntime resolves once pred holds for the channel's runtime state.
function untilRuntime(ch: BoardChannel, pred: (r: ReturnType<BoardChannel["getRuntime"]>) => boolean, what: string): Promise<ReturnType<BoardChannel["getRuntime"]>> {
  return when(() => ch.getRuntime(), (f) => ch.onRuntime(f), pred, what);
}

// untilPresent resolves once user is in the channel's presence list, which
// the server sends after the snapshot (PROTOCOL.md, "Presence").
function untilPresent(ch: BoardChannel, user: string): Promise<unknown> {
  return when(() => ch.presence, (f) => ch.onPresence(f), (ps) => ps.some((p) => p.user === user), `user ${user} present`);
}

async function rejectsWith(p: Promise<unknown>, code: string, notInMessage?: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof RxError, `not an RxError: ${String(e)}`);
    assert.equal(e.code, code);
    if (notInMessage) assert.ok(!e.message.includes(notInMessage), e.message);
    return true;
  });
}

// live runs f on a subscribed BoardChannel, and closes the connection
// after.
async function live(f: (ch: BoardChannel) => Promise<void>): Promise<void> {
  const ch = new BoardChannel({ url, token, WebSocket: WebSocket as unknown as WebSocketConstructor, backoffBase: 20, backoffMax: 200 }, { boardId: "1" });
  const keep = ch.subscribe(() => {});
  try {
    await f(ch);
  } finally {
    keep();
    ch.connection.close();
  }
}

test("generated classes against a live server", () => live(scenario));

// Ids past 2^53 are strings, exact through the snapshot, deltas, actions
// and client writes (issue 17).
test("64-bit ids", async () => {
  const max = "9223372036854775807";
  const ch = new BoardChannel({ url, token, WebSocket: WebSocket as unknown as WebSocketConstructor }, { boardId: max });
  const keep = ch.subscribe(() => {});
  try {
    let s = await until(ch, (b) => b.posts.length === 3, "the wide board");
    assert.equal(s.id, max);
    assert.deepEqual(s.posts.map((p) => [p.id, p.boardId, p.text]), [
      ["9007199254740992", max, "2^53"],
      ["9007199254740993", max, "2^53+1"],
      ["9007199254740995", max, "2^53+3"],
    ]);
    const added = await ch.addPost("wide action");
    assert.equal(added?.boardId, max);
    s = await until(ch, (b) => b.posts.some((p) => p.id === added!.id && p.boardId === max), "the action's post");
    await ch.save("Post", "9007199254740993", { text: "edited 2^53+1" });
    s = ch.getState()!;
    assert.deepEqual(s.posts.slice(0, 3).map((p) => p.text), ["2^53", "edited 2^53+1", "2^53+3"]);
    const serverWide = await ctl("/state?board=" + max);
    assert.equal(JSON.stringify(s), serverWide);
  } finally {
    keep();
    ch.connection.close();
  }
});

async function scenario(ch: BoardChannel): Promise<void> {

  // The snapshot.
  let s = await until(ch, (b) => b.posts.length === 2, "the snapshot");
  assert.equal(s.title, "board");
  assert.deepEqual(s.posts.map((p) => p.text), ["first", "second"]);
  assert.equal(s.posts[0]!.author?.name, "ann");

  // A write made by the server appears.
  await ctl("/write?text=from+server");
  s = await until(ch, (b) => b.posts.some((p) => p.text === "from server"), "a server write");

  // An action: typed result, the state and the runtime state follow.
  const untouched = ch.getState()!.posts[0];
  const post = await ch.addPost("from client");
  assert.equal(post?.text, "from client");
  assert.equal(typeof post?.id, "string");
  s = await until(ch, (b) => b.posts.some((p) => p.id === post!.id), "the action's post");
  assert.equal(s.posts[0], untouched, "an untouched row keeps its identity");
  assert.equal((await untilRuntime(ch, (r) => (r.calls ?? 0) > 0, "the call in the runtime state")).calls, 1);

  // Every error kind, typed, with the server's code.
  await rejectsWith(ch.addPost(""), "bad_request");
  await rejectsWith(ch.fail("forbidden"), "forbidden");
  await rejectsWith(ch.fail("not_found"), "not_found");
  await rejectsWith(ch.fail("plain"), "internal", "secret");
  await rejectsWith(ch.crash(), "internal");
  const raw = ch as unknown as { callAction(name: string, args: unknown[]): Promise<unknown> };
  await rejectsWith(raw.callAction("nope", []), "unknown_action");
  await rejectsWith(raw.callAction("addPost", [42]), "bad_request");
  await rejectsWith(raw.callAction("addPost", []), "bad_request");

  // The server drops the socket; meanwhile rows are added and deleted. The
  // client reconnects, resumes, and ends with exactly the server's state.
  await ctl("/kick-and-write");
  const want = JSON.parse(await ctl("/state")) as Board;
  s = await until(ch, (b) => JSON.stringify(b) === JSON.stringify(want), "the resumed state");
  const ids = s.posts.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "no duplicates");
  assert.ok(!s.posts.some((p) => p.text === "second"), "the deleted row is gone");
  assert.ok(s.posts.some((p) => p.text === "while away 3"));

  // Still live after the resume.
  await ctl("/write?text=after+resume");
  await until(ch, (b) => b.posts.some((p) => p.text === "after resume"), "a write after resume");
}

// Optimistic writes against the live server: each is visible at once, and
// ends in exactly the server's state, whether confirmed or refused.
test("optimistic writes against a live server", () => live(writes));

async function serverState(): Promise<string> {
  return JSON.stringify(JSON.parse(await ctl("/state")) as Board);
}

async function writes(ch: BoardChannel): Promise<void> {
  await until(ch, (b) => b.posts.length > 0, "the snapshot");
  assert.equal(JSON.stringify(ch.getState()), await serverState());
  await untilPresent(ch, "1");
  const first = ch.getState()!.posts[0]!;

  // save: confirmed.
  let p: Promise<unknown> = ch.save("Post", first.id, { text: "saved" });
  assert.equal(ch.getState()!.posts[0]!.text, "saved", "applied at once");
  await p;
  assert.equal(JSON.stringify(ch.getState()), await serverState());
  assert.equal(ch.getState()!.posts[0]!.text, "saved");

  // save: refused, rolled back.
  let before = JSON.stringify(ch.getState());
  p = ch.save("Post", first.id, { text: "forbidden" });
  assert.equal(ch.getState()!.posts[0]!.text, "forbidden");
  await rejectsWith(p, "forbidden");
  assert.equal(JSON.stringify(ch.getState()), before, "identical to before the save");
  assert.equal(before, await serverState());

  // create: a temporary row, then the server's.
  const n = ch.getState()!.posts.length;
  const created = ch.create("Board.posts", "1", { text: "created" });
  const temp = ch.getState()!.posts[n]!;
  assert.ok(temp.id.startsWith("tmp:") && temp.text === "created" && temp.boardId === "1", JSON.stringify(temp));
  const id = await created;
  assert.ok(Number(id) > 0);
  const s = ch.getState()!;
  assert.equal(s.posts.length, n + 1);
  assert.equal(s.posts[n]!.id, id, "the temporary id was replaced by the server's");
  assert.equal(s.posts[n]!.author?.name, "ann");
  assert.equal(JSON.stringify(s), await serverState());

  // create: refused, the temporary row leaves no trace.
  before = JSON.stringify(ch.getState());
  p = ch.create("Board.posts", "1", { text: "forbidden" });
  assert.equal(ch.getState()!.posts.length, n + 2);
  await rejectsWith(p, "forbidden");
  assert.equal(JSON.stringify(ch.getState()), before);

  // delete: refused, the row returns to its original position.
  await ch.save("Post", first.id, { text: "keep" });
  before = JSON.stringify(ch.getState());
  p = ch.delete("Post", first.id);
  assert.ok(!ch.getState()!.posts.some((x) => x.id === first.id), "hidden at once");
  await rejectsWith(p, "forbidden");
  assert.equal(JSON.stringify(ch.getState()), before);
  assert.equal(ch.getState()!.posts[0]!.id, first.id);

  // delete: confirmed.
  p = ch.delete("Post", id);
  assert.ok(!ch.getState()!.posts.some((x) => x.id === id));
  await p;
  assert.ok(!ch.getState()!.posts.some((x) => x.id === id));
  assert.equal(JSON.stringify(ch.getState()), await serverState());
}
