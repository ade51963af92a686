import { type MaybeRefOrGetter, type ShallowRef } from "vue";
import type { ContextChannel, Writes } from "./channel.js";
import { type ChannelView } from "./view.js";
export type { ChannelView } from "./view.js";
/**
 * Subscribes to channel for the lifetime of the current effect scope and
 * returns its view as a read-only shallow ref. Outside a scope, call the
 * returned ref's stop() to unsubscribe.
 */
export declare function useChannel<State, Params, Runtime extends object, W extends Writes>(channel: MaybeRefOrGetter<ContextChannel<State, Params, Runtime, W> | null | undefined>): Readonly<ShallowRef<ChannelView<State, Runtime>>> & {
    stop(): void;
};
