// The React binding, a separate entry so that index.ts needs no React.
//
//   const channel = useMemo(() => new ChatChannel({ url, token }, { chatId }), [url, token, chatId]);
//   const { state, status, error, runtime, ready, presence } = useChannel(channel);
//
// Keep the channel object stable (useMemo): a new channel per render would
// subscribe again on every render.

import { useCallback, useSyncExternalStore } from "react";
import type { ContextChannel, Writes } from "./channel.js";
import type { RxError } from "./errors.js";
import type { Present } from "./protocol.js";
import type { SubscriptionStatus } from "./subscription.js";

/** What useChannel returns; a new object only when something in it changed. */
export interface ChannelView<State, Runtime> {
  /** The nested state, null before the first snapshot. */
  readonly state: State | null;
  readonly status: SubscriptionStatus;
  readonly error: RxError | null;
  /** The runtime state pushed by the channel so far. */
  readonly runtime: Partial<Runtime>;
  /** True once the initial state was complete. */
  readonly ready: boolean;
  /** Who is connected to the channel's stream (channels that track presence). */
  readonly presence: readonly Present[];
}

type AnyChannel = ContextChannel<unknown, unknown, object, Writes>;

const IDLE: ChannelView<unknown, object> = Object.freeze({
  state: null,
  status: "idle",
  error: null,
  runtime: Object.freeze({}),
  ready: false,
  presence: Object.freeze([]),
});

const views = new WeakMap<AnyChannel, ChannelView<unknown, object>>();

// view returns the channel's current view, the same object as last time if
// nothing changed (useSyncExternalStore compares snapshots with Object.is).
function view(channel: AnyChannel): ChannelView<unknown, object> {
  const prev = views.get(channel);
  const state = channel.getState();
  const status = channel.status;
  const error = channel.error;
  const runtime = channel.getRuntime();
  const ready = channel.ready;
  const presence = channel.presence;
  if (
    prev &&
    prev.state === state &&
    prev.status === status &&
    prev.error === error &&
    prev.runtime === runtime &&
    prev.ready === ready &&
    prev.presence === presence
  ) {
    return prev;
  }
  const next = { state, status, error, runtime, ready, presence };
  views.set(channel, next);
  return next;
}

/**
 * Subscribes to channel while the component is mounted and returns its
 * state, status, error, runtime state and readiness. A null or undefined
 * channel gives the idle view.
 */
export function useChannel<State, Params, Runtime extends object, W extends Writes>(
  channel: ContextChannel<State, Params, Runtime, W> | null | undefined,
): ChannelView<State, Runtime> {
  const ch = (channel ?? null) as unknown as AnyChannel | null;
  const subscribe = useCallback(
    (onChange: () => void) => {
      if (!ch) return () => {};
      const offs = [ch.onStatus(onChange), ch.onRuntime(onChange), ch.onPresence(onChange), ch.subscribe(onChange)];
      return () => {
        for (const off of offs) off();
      };
    },
    [ch],
  );
  const getSnapshot = useCallback(() => (ch ? view(ch) : IDLE), [ch]);
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot) as ChannelView<State, Runtime>;
}
