// Unit tests of the normalized index and the nested rebuild (store.ts).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChannelModel, Instance } from "../src/runtime/index.js";
import { Store, jsonEqual } from "../src/runtime/store.js";

const CHAT = {
  anchor: "Chat",
  many: false,
  layers: {
    Chat: {
      members: { type: "User", many: true },
      messages: { type: "Message", many: true },
      drafts: { type: "Draft", many: true },
    },
    Message: { sender: { type: "User", many: false } },
    User: {},
    Draft: {},
  },
} as const satisfies ChannelModel;

type Obj = Record<string, any>;

function row(type: string, id: string, fields: Record<string, unknown>, owner?: string): Instance {
  return owner === undefined ? { type, id, fields } : { type, id, owner, fields };
}

function tomb(type: string, id: string, owner?: string): Instance {
  return owner === undefined ? { type, id, deleted: true } : { type, id, owner, deleted: true };
}

// The snapshot of PROTOCOL.md's example, plus one more message by alice.
function chatStore(): Store {
  const s = new Store();
  s.apply([
    row("Chat", "5", { id: 5, title: "hi", members: [1, 2], messages: [10, 11] }),
    row("User", "1", { id: 1, name: "alice" }),
    row("User", "2", { id: 2, name: "bob" }),
    row("Message", "10", { id: 10, chatId: 5, sender: 2, senderId: 2, text: "yo" }),
    row("Message", "11", { id: 11, chatId: 5, sender: 1, senderId: 1, text: "hello" }),
  ]);
  return s;
}

const build = (s: Store): Obj => s.build(CHAT, "Chat", "5") as Obj;

describe("Store", () => {
  it("nests flat instances by the layer model", () => {
    const state = build(chatStore());
    const alice = { id: 1, name: "alice" };
    const bob = { id: 2, name: "bob" };
    assert.deepEqual(state, {
      id: 5,
      title: "hi",
      members: [alice, bob],
      messages: [
        { id: 10, chatId: 5, sender: bob, senderId: 2, text: "yo" },
        { id: 11, chatId: 5, sender: alice, senderId: 1, text: "hello" },
      ],
    });
    // One object per row, shared by every place that references it.
    assert.equal(state.members[1], state.messages[0]!.sender);
  });

  it("returns null for a missing root", () => {
    assert.equal(new Store().build(CHAT, "Chat", "5"), null);
  });

  it("applies a snapshot in batches: missing rows are skipped, then filled in", () => {
    const s = new Store();
    s.apply([
      row("Chat", "5", { id: 5, title: "hi", members: [1, 2], messages: [10] }),
      row("User", "1", { id: 1, name: "alice" }),
    ]);
    const first = build(s);
    assert.deepEqual(first.members, [{ id: 1, name: "alice" }]);
    assert.deepEqual(first.messages, []);
    s.apply([
      row("User", "2", { id: 2, name: "bob" }),
      row("Message", "10", { id: 10, sender: 2, text: "yo" }),
    ]);
    const second = build(s);
    assert.notEqual(second, first);
    assert.deepEqual(second.members.map((u: Obj) => u.name), ["alice", "bob"]);
    assert.equal(second.members[0], first.members[0], "alice kept her identity");
    assert.equal(second.messages[0].sender, second.members[1]);
  });

  it("merges delta fields and keeps untouched subtrees identical", () => {
    const s = chatStore();
    const before = build(s);
    s.apply([
      row("Message", "12", { id: 12, chatId: 5, sender: 1, senderId: 1, text: "new" }),
      row("Chat", "5", { messages: [10, 11, 12] }),
    ]);
    const after = build(s);
    assert.notEqual(after, before);
    assert.equal(after.title, "hi", "fields not in the delta are kept");
    assert.notEqual(after.messages, before.messages);
    assert.equal(after.messages[0], before.messages[0]);
    assert.equal(after.messages[1], before.messages[1]);
    assert.equal(after.messages[2].text, "new");
    assert.equal(after.members, before.members, "an unchanged list keeps its identity");
    assert.equal(after.members[0], before.members[0]);
  });

  it("a changed row gets a new object on every path to it; siblings keep theirs", () => {
    const s = chatStore();
    const before = build(s);
    s.apply([row("User", "2", { name: "robert" })]);
    const after = build(s);
    const bob = after.members[1];
    assert.deepEqual(bob, { id: 2, name: "robert" });
    assert.notEqual(bob, before.members[1]);
    assert.equal(after.messages[0].sender, bob);
    assert.notEqual(after.messages[0], before.messages[0], "bob's message is on a changed path");
    assert.equal(after.messages[1], before.messages[1], "alice's message is not");
    assert.equal(after.members[0], before.members[0]);
    assert.notEqual(after.members, before.members);
    assert.notEqual(after.messages, before.messages);
  });

  it("a parent's own field change keeps its children and lists", () => {
    const s = chatStore();
    const before = build(s);
    s.apply([row("Chat", "5", { title: "renamed" })]);
    const after = build(s);
    assert.notEqual(after, before);
    assert.equal(after.title, "renamed");
    assert.equal(after.members, before.members);
    assert.equal(after.messages, before.messages);
  });

  it("an update that changes nothing keeps the whole state", () => {
    const s = chatStore();
    const before = build(s);
    s.apply([
      row("User", "2", { id: 2, name: "bob" }),
      row("Chat", "5", { members: [1, 2] }),
    ]);
    assert.equal(build(s), before);
  });

  it("a deleted row disappears from every list and to-one that referenced it", () => {
    const s = chatStore();
    const before = build(s);
    s.apply([tomb("User", "2")]); // the referencing rows are not updated
    const after = build(s);
    assert.deepEqual(after.members, [{ id: 1, name: "alice" }]);
    assert.equal(after.members[0], before.members[0]);
    assert.equal(after.messages[0].sender, null, "a to-one to a missing row is null");
    assert.equal(after.messages[1], before.messages[1]);
    assert.equal(s.has("User", "2"), false);
  });

  it("deleting a message drops it from the list", () => {
    const s = chatStore();
    const before = build(s);
    s.apply([tomb("Message", "10"), row("Chat", "5", { messages: [11] })]);
    const after = build(s);
    assert.equal(after.messages.length, 1);
    assert.equal(after.messages[0], before.messages[1]);
    assert.equal(after.members, before.members);
  });

  it("moves a row between parents (FK move) and keeps it when only the lists changed", () => {
    const BOARD = {
      anchor: "Board",
      many: false,
      layers: {
        Board: { columns: { type: "Column", many: true } },
        Column: { cards: { type: "Card", many: true } },
        Card: {},
      },
    } as const satisfies ChannelModel;
    const s = new Store();
    s.apply([
      row("Board", "1", { id: 1, columns: [1, 2, 3] }),
      row("Column", "1", { id: 1, cards: [7, 8] }),
      row("Column", "2", { id: 2, cards: [9] }),
      row("Column", "3", { id: 3, cards: [] }),
      row("Card", "7", { id: 7, title: "a" }),
      row("Card", "8", { id: 8, title: "b" }),
      row("Card", "9", { id: 9, title: "c" }),
    ]);
    const b0 = s.build(BOARD, "Board", "1") as Obj;
    s.apply([row("Column", "1", { cards: [8] }), row("Column", "2", { cards: [9, 7] })]);
    const b1 = s.build(BOARD, "Board", "1") as Obj;
    assert.deepEqual(
      b1.columns.map((c: Obj) => c.cards.map((k: Obj) => k.id)),
      [[8], [9, 7], []],
    );
    assert.equal(b1.columns[1].cards[1], b0.columns[0].cards[0], "the moved card kept its identity");
    assert.notEqual(b1.columns[0], b0.columns[0]);
    assert.notEqual(b1.columns[1], b0.columns[1]);
    assert.equal(b1.columns[2], b0.columns[2], "the untouched column kept its identity");
    assert.equal(b1.columns[0].cards[0], b0.columns[0].cards[1]);

    // A move that also changes the row's own foreign key field.
    s.apply([row("Card", "7", { columnId: 3 }), row("Column", "2", { cards: [9] }), row("Column", "3", { cards: [7] })]);
    const b2 = s.build(BOARD, "Board", "1") as Obj;
    assert.deepEqual(b2.columns[2].cards, [{ id: 7, title: "a", columnId: 3 }]);
    assert.notEqual(b2.columns[2].cards[0], b1.columns[1].cards[1]);
    assert.equal(b2.columns[0], b1.columns[0]);
    assert.equal(b2.columns[1].cards[0], b1.columns[1].cards[0]);
  });

  it("lays the user's overlay over the shared row; tombstones remove one part", () => {
    const s = chatStore();
    s.apply([row("Chat", "5", { drafts: [] })]);
    const shared = build(s);
    assert.deepEqual(shared.drafts, []);

    s.apply([
      row("Draft", "3", { id: 3, chatId: 5, userId: 7, text: "draft" }, "7"),
      row("Chat", "5", { drafts: [3] }, "7"),
    ]);
    const mine = build(s);
    assert.deepEqual(mine.drafts, [{ id: 3, chatId: 5, userId: 7, text: "draft" }]);
    assert.equal(mine.members, shared.members);

    // A shared update keeps the overlay on top.
    s.apply([row("Chat", "5", { title: "t2", drafts: [] })]);
    const both = build(s);
    assert.equal(both.title, "t2");
    assert.equal(both.drafts, mine.drafts, "the overlay's list still wins and kept its identity");

    // The overlay's tombstone removes only the overlay.
    s.apply([tomb("Chat", "5", "7"), tomb("Draft", "3", "7")]);
    const gone = build(s);
    assert.deepEqual(gone.drafts, []);
    assert.equal(gone.title, "t2");
    assert.equal(s.has("Draft", "3"), false);

    // A shared tombstone leaves the user's overlay in place.
    s.apply([row("Chat", "5", { drafts: [4] }, "7")]);
    s.apply([tomb("Chat", "5")]);
    assert.deepEqual(s.fields("Chat", "5"), { drafts: [4] });
    s.apply([tomb("Chat", "5", "7")]);
    assert.equal(s.has("Chat", "5"), false);
    assert.equal(s.build(CHAT, "Chat", "5"), null);
  });

  it("a tombstone of an owner's part that is not there changes nothing", () => {
    const s = chatStore();
    const before = build(s);
    s.apply([tomb("Chat", "5", "7"), tomb("User", "99")]);
    assert.equal(build(s), before);
  });

  it("a reset that sends the same rows keeps every identity", () => {
    const s = chatStore();
    const before = build(s);
    s.clear();
    s.apply([
      row("Chat", "5", { id: 5, title: "hi", members: [1, 2], messages: [10, 11] }),
      row("User", "1", { id: 1, name: "alice" }),
      row("User", "2", { id: 2, name: "bob" }),
      row("Message", "10", { id: 10, chatId: 5, sender: 2, senderId: 2, text: "yo" }),
      row("Message", "11", { id: 11, chatId: 5, sender: 1, senderId: 1, text: "hello" }),
    ]);
    s.settle();
    assert.equal(build(s), before);
  });

  it("a reset in batches drops rows not sent again and keeps unchanged ones", () => {
    const s = chatStore();
    const before = build(s);
    s.clear();
    s.apply([row("Chat", "5", { id: 5, title: "hi", members: [1, 2], messages: [11] })]);
    const mid = build(s);
    assert.deepEqual(mid.members, [], "until they come again, cleared rows are gone");
    s.apply([
      row("User", "1", { id: 1, name: "alice" }),
      row("User", "2", { id: 2, name: "bob" }),
      row("Message", "11", { id: 11, chatId: 5, sender: 1, senderId: 1, text: "hello" }),
    ]);
    s.settle();
    const after = build(s);
    assert.equal(s.has("Message", "10"), false);
    assert.deepEqual(after.messages.map((m: Obj) => m.id), [11]);
    assert.equal(after.members[0], before.members[0], "rows sent again unchanged kept their identity");
    assert.equal(after.members[1], before.members[1]);
    assert.equal(after.messages[0], before.messages[1]);
  });

  it("looks ids up by their string form", () => {
    const s = new Store();
    s.apply([
      row("Chat", "5", { id: 5, members: ["1", 2], messages: [] }),
      row("User", "1", { id: 1 }),
      row("User", "2", { id: 2 }),
    ]);
    assert.deepEqual(build(s).members, [{ id: 1 }, { id: 2 }]);
  });

  it("treats a null to-many as empty and leaves absent relation fields absent", () => {
    const s = new Store();
    s.apply([row("Chat", "5", { id: 5, members: null })]);
    const st = build(s);
    assert.deepEqual(st.members, []);
    assert.equal("messages" in st, false);
  });

  it("keeps the raw id where a reference cycles back to the path", () => {
    const PEOPLE = {
      anchor: "Person",
      many: false,
      layers: {
        Person: { friends: { type: "Person", many: true }, manager: { type: "Person", many: false } },
      },
    } as const satisfies ChannelModel;
    const s = new Store();
    s.apply([
      row("Person", "1", { id: 1, name: "a", friends: [2], manager: 1 }),
      row("Person", "2", { id: 2, name: "b", friends: [1, 3], manager: null }),
      row("Person", "3", { id: 3, name: "c", friends: [], manager: 2 }),
    ]);
    const p1 = s.build(PEOPLE, "Person", "1") as Obj;
    assert.deepEqual(p1, {
      id: 1,
      name: "a",
      manager: 1,
      friends: [
        {
          id: 2,
          name: "b",
          manager: null,
          friends: [1, { id: 3, name: "c", friends: [], manager: 2 }],
        },
      ],
    });
    s.apply([row("Person", "1", { name: "a2" })]);
    const p2 = s.build(PEOPLE, "Person", "1") as Obj;
    assert.equal(p2.name, "a2");
    assert.equal(p2.friends, p1.friends, "the subtree below did not change");
    s.apply([row("Person", "3", { name: "c2" })]);
    const p3 = s.build(PEOPLE, "Person", "1") as Obj;
    assert.notEqual(p3.friends[0], p2.friends[0]);
    assert.equal(p3.friends[0].friends[1].name, "c2");
  });

  it("shares unchanged branches of a recursive tree", () => {
    const TREE = {
      anchor: "Comment",
      many: false,
      layers: { Comment: { replies: { type: "Comment", many: true } } },
    } as const satisfies ChannelModel;
    const s = new Store();
    s.apply([
      row("Comment", "1", { id: 1, replies: [2, 3] }),
      row("Comment", "2", { id: 2, replies: [4] }),
      row("Comment", "3", { id: 3, replies: [] }),
      row("Comment", "4", { id: 4, replies: [] }),
    ]);
    const t0 = s.build(TREE, "Comment", "1") as Obj;
    s.apply([row("Comment", "3", { text: "edited" })]);
    const t1 = s.build(TREE, "Comment", "1") as Obj;
    assert.notEqual(t1, t0);
    assert.equal(t1.replies[0], t0.replies[0], "the branch of comment 2 is unchanged");
    assert.notEqual(t1.replies[1], t0.replies[1]);
  });

  it("compares JSON values deeply", () => {
    assert.equal(jsonEqual({ a: [1, { b: null }] }, { a: [1, { b: null }] }), true);
    assert.equal(jsonEqual({ a: 1 }, { a: 1, b: 2 }), false);
    assert.equal(jsonEqual([1], { 0: 1 }), false);
    assert.equal(jsonEqual({ a: undefined }, { b: undefined }), false);
  });
});
