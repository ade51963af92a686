import type { ContextChannel, Writes } from "./channel.js";
import { type ChannelView } from "./view.js";
export type { ChannelView } from "./view.js";
/**
 * Subscribes to channel while the component is mounted and returns its
 * state, status, error, runtime state and readiness (a ChannelView, the
 * framework-agnostic store's value: see view.ts). A null or undefined
 * channel gives the idle view.
 */
export declare function useChannel<State, Params, Runtime extends object, W extends Writes>(channel: ContextChannel<State, Params, Runtime, W> | null | undefined): ChannelView<State, Runtime>;
