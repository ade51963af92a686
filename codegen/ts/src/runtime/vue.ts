// The Vue binding: a composable returning the channel's view as a shallow
// ref, subscribed while the calling effect scope (a component's setup)
// lives.
//
//   const channel = computed(() => new ChatChannel({ url, token }, { chatId: props.chatId }));
//   const chat = useChannel(channel); // chat.value.state, .status, .ready, ...
//
// The argument may be a channel, a ref or a getter of one (null: idle);
// when it changes, the old channel is unsubscribed and the new one
// subscribed. Keep a channel object for as long as its params do not
// change: a new object subscribes again.

import { getCurrentScope, onScopeDispose, shallowRef, toValue, watch, type MaybeRefOrGetter, type ShallowRef } from "vue";
import type { ContextChannel, Writes } from "./channel.js";
import { channelStore, type ChannelView } from "./view.js";

export type { ChannelView } from "./view.js";

/**
 * Subscribes to channel for the lifetime of the current effect scope and
 * returns its view as a read-only shallow ref. Outside a scope, call the
 * returned ref's stop() to unsubscribe.
 */
export function useChannel<State, Params, Runtime extends object, W extends Writes>(
  channel: MaybeRefOrGetter<ContextChannel<State, Params, Runtime, W> | null | undefined>,
): Readonly<ShallowRef<ChannelView<State, Runtime>>> & { stop(): void } {
  const view = shallowRef<ChannelView<State, Runtime>>(channelStore<State, Params, Runtime, W>(null).getState());
  let off = (): void => {};
  const stopWatch = watch(
    () => toValue(channel),
    (ch) => {
      off();
      const store = channelStore(ch);
      off = store.subscribe((v) => {
        view.value = v;
      });
      view.value = store.getState();
    },
    { immediate: true, flush: "sync" },
  );
  const stop = (): void => {
    stopWatch();
    off();
    off = () => {};
  };
  if (getCurrentScope()) onScopeDispose(stop);
  return Object.assign(view, { stop }) as Readonly<ShallowRef<ChannelView<State, Runtime>>> & { stop(): void };
}
