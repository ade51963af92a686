// The framework-agnostic store of a channel: one object with the state,
// status, error, runtime state, readiness and presence (a ChannelView),
// subscribe(listener) and getState(). The React, Vue and Svelte bindings
// are thin layers over it; any other framework (or none) uses it directly:
//
//   const store = channelStore(new ChatChannel({ url, token }, { chatId: 5 }));
//   const off = store.subscribe((view) => render(view.state, view.status));
//   store.getState(); // the current ChannelView
//   off(); // the last listener unsubscribes the channel
//
// getState returns the same object until something in it changes, so
// listeners and frameworks can compare views with ===.

import type { ContextChannel, Writes } from "./channel.js";
import type { RxError } from "./errors.js";
import type { Present } from "./protocol.js";
import type { SubscriptionStatus } from "./subscription.js";

/** A channel's whole client-side view; a new object only when something in it changed. */
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

/** A store over one channel: see the file comment. */
export interface ChannelStore<State, Runtime> {
  /**
   * Calls listener with the new view after each change. The first listener
   * subscribes the channel (its socket subscription), and removing the
   * last one unsubscribes. The returned function removes the listener.
   */
  subscribe(listener: (view: ChannelView<State, Runtime>) => void): () => void;
  /** The current view (the idle view while nothing is subscribed). */
  getState(): ChannelView<State, Runtime>;
}

type AnyChannel = ContextChannel<unknown, unknown, object, Writes>;

/** The view of no channel, or of a channel without subscription. */
export const IDLE_VIEW: ChannelView<never, object> = Object.freeze({
  state: null,
  status: "idle",
  error: null,
  runtime: Object.freeze({}),
  ready: false,
  presence: Object.freeze([]),
});

const views = new WeakMap<AnyChannel, ChannelView<unknown, object>>();

/**
 * The channel's current view: the same object as last time if nothing
 * changed. A null or undefined channel gives IDLE_VIEW.
 */
export function channelView<State, Params, Runtime extends object, W extends Writes>(
  channel: ContextChannel<State, Params, Runtime, W> | null | undefined,
): ChannelView<State, Runtime> {
  if (!channel) return IDLE_VIEW as ChannelView<State, Runtime>;
  const ch = channel as unknown as AnyChannel;
  const prev = views.get(ch);
  const state = ch.getState();
  const status = ch.status;
  const error = ch.error;
  const runtime = ch.getRuntime();
  const ready = ch.ready;
  const presence = ch.presence;
  if (
    prev &&
    prev.state === state &&
    prev.status === status &&
    prev.error === error &&
    prev.runtime === runtime &&
    prev.ready === ready &&
    prev.presence === presence
  ) {
    return prev as ChannelView<State, Runtime>;
  }
  const next = { state, status, error, runtime, ready, presence };
  views.set(ch, next);
  return next as ChannelView<State, Runtime>;
}

/**
 * Calls onChange after any change of the channel's state, status, error,
 * runtime state or presence, subscribing the channel while it is held;
 * returns the function that stops it. For bindings: onChange may be
 * called when nothing visible changed (compare channelView results).
 */
export function watchChannel<State, Params, Runtime extends object, W extends Writes>(
  channel: ContextChannel<State, Params, Runtime, W> | null | undefined,
  onChange: () => void,
): () => void {
  if (!channel) return () => {};
  const ch = channel as unknown as AnyChannel;
  const offs = [ch.onStatus(onChange), ch.onRuntime(onChange), ch.onPresence(onChange), ch.subscribe(onChange)];
  return () => {
    for (const off of offs) off();
  };
}

/** The store of channel (null or undefined: a store that stays idle). */
export function channelStore<State, Params, Runtime extends object, W extends Writes>(
  channel: ContextChannel<State, Params, Runtime, W> | null | undefined,
): ChannelStore<State, Runtime> {
  return {
    subscribe(listener) {
      let last = channelView(channel);
      return watchChannel(channel, () => {
        const next = channelView(channel);
        if (next === last) return;
        last = next;
        listener(next);
      });
    },
    getState: () => channelView(channel),
  };
}
