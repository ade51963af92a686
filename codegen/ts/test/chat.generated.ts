// Interfaces and channel classes shaped exactly like the generator's
// <name>.interfaces.ts and <name>.channels.ts, so that tsc checks the shape
// the generator targets.

import { ContextChannel, type ChannelModel, type Connection, type ConnectionOptions } from "../src/runtime/index.js";

// ---- what <name>.interfaces.ts would hold ----

export interface User {
  id: number;
  name: string;
}

export interface Message {
  id: number;
  chatId: number;
  sender: User | null;
  senderId: number;
  text: string;
}

export interface Chat {
  id: number;
  title: string;
  members: User[];
  messages: Message[];
}

// ---- what <name>.channels.ts would hold ----

export interface ChatParams {
  chatId: number;
}

export interface ChatRuntime {
  typing: string[];
}

const CHAT_MODEL = {
  anchor: "Chat",
  many: false,
  layers: {
    Chat: { members: { type: "User", many: true }, messages: { type: "Message", many: true } },
    Message: { sender: { type: "User", many: false } },
    User: {},
  },
  writes: {
    Message: {
      key: "id",
      idType: "number",
      template: { chatId: 0, id: 0, sender: null, senderId: 0, text: "" },
      create: {
        "Chat.messages": { parent: "Chat", field: "messages", many: true, foreignKey: "chatId" },
      },
    },
    Chat: {
      key: "id",
      idType: "number",
      template: { id: 0, members: [], messages: [], title: "" },
    },
  },
} as const satisfies ChannelModel;

/** The client writes ChatChannel allows: the types and fields of save, create and delete. */
export type ChatChannelWrites = {
  save: {
    Message: { key: number; fields: { text?: string } };
    Chat: { key: number; fields: { title?: string } };
  };
  create: {
    "Chat.messages": { parent: number; key: number; fields: { text?: string } };
  };
  delete: {
    Message: { key: number };
  };
};

export class ChatChannel extends ContextChannel<Chat, ChatParams, ChatRuntime, ChatChannelWrites> {
  static readonly channel = "ChatChannel";
  readonly channel = "ChatChannel";
  readonly many = false;
  readonly model = CHAT_MODEL;

  constructor(conn: Connection | ConnectionOptions, params: ChatParams) {
    super(conn, params);
  }

  sendMessage(text: string): Promise<Message> {
    return this.callAction("sendMessage", [text]);
  }

  clear(): Promise<void> {
    return this.callAction("clear", []);
  }
}

const CHAT_LIST_MODEL = { anchor: "Chat", many: true, layers: CHAT_MODEL.layers } as const satisfies ChannelModel;

export class ChatListChannel extends ContextChannel<Chat[], Record<string, never>, Record<string, never>> {
  static readonly channel = "ChatListChannel";
  readonly channel = "ChatListChannel";
  readonly many = true;
  readonly model = CHAT_LIST_MODEL;

  constructor(conn: Connection | ConnectionOptions, params: Record<string, never> = {}) {
    super(conn, params);
  }
}
