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
/** The view of no channel, or of a channel without subscription. */
export declare const IDLE_VIEW: ChannelView<never, object>;
/**
 * The channel's current view: the same object as last time if nothing
 * changed. A null or undefined channel gives IDLE_VIEW.
 */
export declare function channelView<State, Params, Runtime extends object, W extends Writes>(channel: ContextChannel<State, Params, Runtime, W> | null | undefined): ChannelView<State, Runtime>;
/**
 * Calls onChange after any change of the channel's state, status, error,
 * runtime state or presence, subscribing the channel while it is held;
 * returns the function that stops it. For bindings: onChange may be
 * called when nothing visible changed (compare channelView results).
 */
export declare function watchChannel<State, Params, Runtime extends object, W extends Writes>(channel: ContextChannel<State, Params, Runtime, W> | null | undefined, onChange: () => void): () => void;
/** The store of channel (null or undefined: a store that stays idle). */
export declare function channelStore<State, Params, Runtime extends object, W extends Writes>(channel: ContextChannel<State, Params, Runtime, W> | null | undefined): ChannelStore<State, Runtime>;
