// The React binding, a separate entry so that index.ts needs no React.
//
//   const channel = useMemo(() => new ChatChannel({ url, token }, { chatId }), [url, token, chatId]);
//   const { state, status, error, runtime, ready, presence } = useChannel(channel);
//
// Keep the channel object stable (useMemo): a new channel per render would
// subscribe again on every render.

import { useCallback, useSyncExternalStore } from "react";
import type { ContextChannel, Writes } from "./channel.js";
import { channelView, watchChannel, type ChannelView } from "./view.js";

export type { ChannelView } from "./view.js";

/**
 * Subscribes to channel while the component is mounted and returns its
 * state, status, error, runtime state and readiness (a ChannelView, the
 * framework-agnostic store's value: see view.ts). A null or undefined
 * channel gives the idle view.
 */
export function useChannel<State, Params, Runtime extends object, W extends Writes>(
  channel: ContextChannel<State, Params, Runtime, W> | null | undefined,
): ChannelView<State, Runtime> {
  const subscribe = useCallback((onChange: () => void) => watchChannel(channel, onChange), [channel]);
  const getSnapshot = useCallback(() => channelView(channel), [channel]);
  return useSyncExternalStore(subscribe, getSnapshot, getSnapshot);
}
