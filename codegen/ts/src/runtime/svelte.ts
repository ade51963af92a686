// The Svelte binding: a channel as a Svelte store. It needs no import from
// svelte: a store is any object with Svelte's store contract, subscribe
// (run) that calls run at once with the current value and then after each
// change, and returns the function that unsubscribes.
//
//   <script>
//     import { readableChannel } from "./rx/rxgorm/svelte.js";
//     const chat = readableChannel(new ChatChannel({ url, token }, { chatId }));
//   </script>
//   {#if $chat.ready}{$chat.state.title}{/if}
//
// The channel is subscribed while the store has subscribers (a component
// using $chat, or get(chat) from svelte/store for the moment of the call).

import type { ContextChannel, Writes } from "./channel.js";
import { channelStore, type ChannelView } from "./view.js";

/** Svelte's store contract (svelte/store's Readable, without the import). */
export interface Readable<T> {
  subscribe(run: (value: T) => void): () => void;
}

/** A Svelte store of channel's ChannelView (null or undefined: always idle). */
export function readableChannel<State, Params, Runtime extends object, W extends Writes>(
  channel: ContextChannel<State, Params, Runtime, W> | null | undefined,
): Readable<ChannelView<State, Runtime>> {
  const store = channelStore(channel);
  return {
    subscribe(run) {
      const off = store.subscribe(run);
      run(store.getState()); // after subscribing: the status is "subscribing" already
      return off;
    },
  };
}
