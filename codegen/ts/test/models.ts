// Layer models and fixtures shared by the tests, shaped like the generator's output.

import type { ChannelModel, Instance } from "../src/runtime/index.js";

export const CHAT_MODEL = {
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

export const CHAT_LIST_MODEL = { ...CHAT_MODEL, many: true } as const satisfies ChannelModel;

export type Obj = Record<string, any>;

export function row(type: string, id: string, fields: Record<string, unknown>, owner?: string): Instance {
  return owner === undefined ? { type, id, fields } : { type, id, owner, fields };
}

export function tomb(type: string, id: string, owner?: string): Instance {
  return owner === undefined ? { type, id, deleted: true } : { type, id, owner, deleted: true };
}

/** The rows of chat `id` with two members and one message. */
export function chatRows(id: number, title = `chat ${id}`): Instance[] {
  return [
    row("Chat", String(id), { id, title, members: [1, 2], messages: [id * 10] }),
    row("User", "1", { id: 1, name: "alice" }),
    row("User", "2", { id: 2, name: "bob" }),
    row("Message", String(id * 10), { id: id * 10, chatId: id, sender: 2, senderId: 2, text: "yo" }),
  ];
}
