// The frames of protocol v1 (docs/PROTOCOL.md), as TypeScript types.

/** A flat instance: one row, or a per-user overlay of a row (owner set). */
export interface Instance {
  readonly type: string;
  /** The canonical string form of the primary key. */
  readonly id: string;
  /** Set on per-user rows and overlays; the server only sends the user's own. */
  readonly owner?: string | undefined;
  /** Full fields for new rows, changed fields in deltas; absent on tombstones. */
  readonly fields?: Readonly<Record<string, unknown>> | undefined;
  /** A tombstone: the row (or, with owner, the overlay) left the stream. */
  readonly deleted?: boolean | undefined;
}

/** A subscription or call id: chosen by the client, echoed verbatim. */
export type WireId = string | number;

// Client → server.

export interface HelloFrame {
  readonly type: "hello";
  readonly v: number;
  readonly token?: string;
  /**
   * The client splits every frame on "\n": once it is welcomed, the
   * server may put several messages in one frame, separated by "\n".
   * This runtime always sets it.
   */
  readonly batch?: boolean;
}

export interface SubFrame {
  readonly type: "sub";
  readonly id: WireId;
  readonly channel: string;
  readonly params?: unknown;
  /** The last version seen per anchor, to resume. */
  readonly since?: Readonly<Record<string, number>>;
}

export interface UnsubFrame {
  readonly type: "unsub";
  readonly id: WireId;
}

export interface CallFrame {
  readonly type: "call";
  readonly id: WireId;
  readonly sub: WireId;
  readonly action: string;
  readonly args: readonly unknown[];
}

/** A client write: save fields of a row. */
export interface SaveFrame {
  readonly type: "save";
  readonly id: WireId;
  readonly sub: WireId;
  readonly layer: string;
  readonly row: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** A client write: create a row under a parent's relation ("Type.field"). */
export interface CreateFrame {
  readonly type: "create";
  readonly id: WireId;
  readonly sub: WireId;
  readonly layer: string;
  readonly relation: string;
  readonly parent: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** A client write: delete a row. */
export interface DeleteFrame {
  readonly type: "delete";
  readonly id: WireId;
  readonly sub: WireId;
  readonly layer: string;
  readonly row: string;
}

export type WriteFrame = SaveFrame | CreateFrame | DeleteFrame;

export type ClientFrame = HelloFrame | SubFrame | UnsubFrame | CallFrame | WriteFrame;

// Server → client.

export interface WelcomeFrame {
  readonly type: "welcome";
  readonly v: number;
  readonly user: string;
  readonly maxMessage: number;
}

export interface SnapshotFrame {
  readonly type: "snapshot";
  readonly sub: WireId;
  readonly anchor: string;
  readonly version: number;
  readonly reset: boolean;
  readonly more: boolean;
  readonly instances: readonly Instance[];
}

export interface DoneFrame {
  readonly type: "done";
  readonly sub: WireId;
}

export interface DeltaFrame {
  readonly type: "delta";
  readonly channel: string;
  readonly anchor: string;
  readonly version: number;
  /** The version this delta applies to; above the one held, changes were missed. */
  readonly from?: number;
  readonly instances: readonly Instance[];
}

export interface AnchorsFrame {
  readonly type: "anchors";
  readonly sub: WireId;
  readonly ids: readonly string[];
}

export interface UnsubscribedFrame {
  readonly type: "unsubscribed";
  readonly sub: WireId;
}

export interface ErrorFrame {
  readonly type: "error";
  readonly sub?: WireId;
  readonly code: string;
  readonly message: string;
}

export interface ResultFrame {
  readonly type: "result";
  readonly id: WireId;
  readonly value?: unknown;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface RuntimeFrame {
  readonly type: "runtime";
  readonly sub: WireId;
  readonly key: string;
  readonly value: unknown;
}

/** A user present in a stream. */
export interface Present {
  /** The user's id. */
  readonly user: string;
  /** How many subscriptions the user holds on the stream, over every server node. */
  readonly connections: number;
}

export interface PresenceFrame {
  readonly type: "presence";
  readonly sub: WireId;
  readonly anchor: string;
  readonly users: readonly Present[];
}

export interface SystemFrame {
  readonly type: "system";
  readonly message: unknown;
}

export type ServerFrame =
  | WelcomeFrame
  | SnapshotFrame
  | DoneFrame
  | DeltaFrame
  | AnchorsFrame
  | UnsubscribedFrame
  | ErrorFrame
  | ResultFrame
  | RuntimeFrame
  | PresenceFrame
  | SystemFrame;

/**
 * Parses a server message: a whole frame, or one part of a batched frame.
 * It returns null for anything that is not a JSON object with a string
 * `type`; unknown types are returned as they are and ignored by the
 * connection (a newer server may add some).
 */
export function parseServerFrame(data: unknown): ServerFrame | null {
  const text = typeof data === "string" ? data : String(data);
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null || typeof (m as { type?: unknown }).type !== "string") {
    return null;
  }
  return m as ServerFrame;
}
