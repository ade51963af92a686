// useChannel under react-test-renderer, against the fake server.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createElement } from "react";
import TestRenderer, { act } from "react-test-renderer";
import { Connection } from "../src/runtime/index.js";
import { useChannel, type ChannelView } from "../src/runtime/react.js";
import { ChatChannel, type Chat, type ChatRuntime } from "./chat.generated.js";
import { FakeServer, testOptions, waitFor } from "./fake-server.js";
import { chatRows, row } from "./models.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

describe("useChannel", () => {
  it("subscribes on mount, renders state, status and runtime, unsubscribes on unmount", async (t) => {
    const srv = await FakeServer.start();
    const conn = new Connection(srv.url, testOptions());
    t.after(async () => {
      conn.close();
      await srv.stop();
    });
    const channel = new ChatChannel(conn, { chatId: 5 });
    const views: ChannelView<Chat, ChatRuntime>[] = [];
    function Probe(props: { channel: ChatChannel | null }) {
      views.push(useChannel(props.channel));
      return null;
    }
    const last = () => views[views.length - 1]!;

    let root!: TestRenderer.ReactTestRenderer;
    const consoleError = console.error;
    console.error = (...args: unknown[]) => {
      if (!String(args[0]).includes("react-test-renderer is deprecated")) consoleError(...args);
    };
    try {
      await act(async () => {
        root = TestRenderer.create(createElement(Probe, { channel: null }));
      });
    } finally {
      console.error = consoleError;
    }
    assert.deepEqual(last(), { state: null, status: "idle", error: null, runtime: {}, ready: false, presence: [] });

    await act(async () => root.update(createElement(Probe, { channel })));
    const sock = await srv.accept();
    await sock.handshake();
    const sub = await sock.next("sub");
    assert.equal(last().status, "subscribing");

    await act(async () => {
      sock.send({ type: "snapshot", sub: sub.id, anchor: "5", version: 1, reset: true, more: false, instances: chatRows(5) });
      sock.send({ type: "runtime", sub: sub.id, key: "typing", value: ["alice"] });
      sock.send({ type: "done", sub: sub.id });
      await waitFor(() => channel.ready, "ready");
    });
    const ready = last();
    assert.equal(ready.status, "ready");
    assert.equal(ready.ready, true);
    assert.equal(ready.state?.title, "chat 5");
    assert.deepEqual(ready.runtime, { typing: ["alice"] });

    // A re-render without a change returns the same view object.
    await act(async () => root.update(createElement(Probe, { channel })));
    assert.equal(last(), ready);

    await act(async () => {
      sock.send({ type: "delta", channel: "ChatChannel", anchor: "5", version: 2, instances: [row("Chat", "5", { title: "new" })] });
      await waitFor(() => channel.getState()?.title === "new", "delta");
    });
    assert.equal(last().state?.title, "new");
    assert.equal(last().state?.members, ready.state?.members);

    await act(async () => {
      sock.send({ type: "presence", sub: sub.id, anchor: "5", users: [{ user: "7", connections: 2 }] });
      await waitFor(() => channel.presence.length === 1, "presence");
    });
    assert.deepEqual(last().presence, [{ user: "7", connections: 2 }]);
    assert.equal(last().state, channel.getState());

    await act(async () => root.unmount());
    assert.deepEqual(await sock.next("unsub"), { type: "unsub", id: sub.id });
    assert.equal(channel.status, "idle");
  });
});
