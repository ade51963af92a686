import type { ContextChannel, Writes } from "./channel.js";
import { type ChannelView } from "./view.js";
/** Svelte's store contract (svelte/store's Readable, without the import). */
export interface Readable<T> {
    subscribe(run: (value: T) => void): () => void;
}
/** A Svelte store of channel's ChannelView (null or undefined: always idle). */
export declare function readableChannel<State, Params, Runtime extends object, W extends Writes>(channel: ContextChannel<State, Params, Runtime, W> | null | undefined): Readable<ChannelView<State, Runtime>>;
