// End-to-end for the plain JavaScript form (makefrontend -js -bindings
// svelte,vue): this file is JavaScript, run by node as it is, with no
// TypeScript build, against a live Go server started by
// codegen/e2e_test.go (RX_URL, RX_TOKEN, RX_CONTROL). It uses the
// framework-agnostic store, the Svelte store and the Vue composable.
import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { get } from "svelte/store";
import { effectScope } from "vue";
import { BoardChannel } from "../plain-gen/e2eapp.channels.js";
import { channelStore, RxError } from "../plain-gen/rxgorm/index.js";
import { readableChannel } from "../plain-gen/rxgorm/svelte.js";
import { useChannel } from "../plain-gen/rxgorm/vue.js";

const url = process.env.RX_URL;
const token = process.env.RX_TOKEN;
const control = process.env.RX_CONTROL;

// until resolves with the store's view once pred holds for it.
function until(store, pred, what) {
  return new Promise((resolve, reject) => {
    const check = (view) => {
      if (!pred(view)) return;
      clearTimeout(timer);
      off();
      resolve(view);
    };
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timeout waiting for ${what}: ${JSON.stringify(store.getState())}`));
    }, 10000);
    const off = store.subscribe(check);
    check(store.getState());
  });
}

const texts = (view) => view.state?.posts.map((p) => p.text) ?? [];

test("plain JavaScript against a live server", async () => {
  const board = new BoardChannel({ url, token, WebSocket }, { boardId: "1" });
  const store = channelStore(board);
  const keep = store.subscribe(() => {});
  try {
    let view = await until(store, (v) => v.ready, "the snapshot");
    assert.equal(view.status, "ready");
    assert.equal(view.state.title, "board");
    assert.deepEqual(texts(view), ["first", "second"]);
    assert.equal(view.state.posts[0].author.name, "ann");

    // An action, its result, its delta and the runtime state it sets.
    const post = await board.addPost("from plain js");
    assert.equal(post.text, "from plain js");
    view = await until(store, (v) => texts(v).includes("from plain js") && v.runtime.calls === 1, "the action's post");
    await assert.rejects(board.addPost(""), (e) => e instanceof RxError && e.code === "bad_request");

    // A write made by the server with GORM.
    const w = await fetch(control + "/write?text=from%20go", { method: "POST" });
    assert.equal(w.status, 200);
    await until(store, (v) => texts(v).includes("from go"), "the server's write");

    // A client write, shown at once, confirmed by the server.
    await board.save("Post", post.id, { text: "edited in js" });
    view = await until(store, (v) => texts(v).includes("edited in js"), "the client write");
    assert.ok(!texts(view).includes("from plain js"));

    // The Svelte store and the Vue composable share the subscription.
    const svelte = get(readableChannel(board));
    assert.equal(svelte, store.getState());
    const scope = effectScope();
    const vue = scope.run(() => useChannel(board));
    assert.equal(vue.value, store.getState());
    scope.stop();
    assert.equal(board.status, "ready");
  } finally {
    keep();
    board.connection.close();
  }
  assert.equal(board.status, "idle");
});
