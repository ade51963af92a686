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
/** The view of no channel, or of a channel without subscription. */
export const IDLE_VIEW = Object.freeze({
    state: null,
    status: "idle",
    error: null,
    runtime: Object.freeze({}),
    ready: false,
    presence: Object.freeze([]),
});
const views = new WeakMap();
/**
 * The channel's current view: the same object as last time if nothing
 * changed. A null or undefined channel gives IDLE_VIEW.
 */
export function channelView(channel) {
    if (!channel)
        return IDLE_VIEW;
    const ch = channel;
    const prev = views.get(ch);
    const state = ch.getState();
    const status = ch.status;
    const error = ch.error;
    const runtime = ch.getRuntime();
    const ready = ch.ready;
    const presence = ch.presence;
    if (prev &&
        prev.state === state &&
        prev.status === status &&
        prev.error === error &&
        prev.runtime === runtime &&
        prev.ready === ready &&
        prev.presence === presence) {
        return prev;
    }
    const next = { state, status, error, runtime, ready, presence };
    views.set(ch, next);
    return next;
}
/**
 * Calls onChange after any change of the channel's state, status, error,
 * runtime state or presence, subscribing the channel while it is held;
 * returns the function that stops it. For bindings: onChange may be
 * called when nothing visible changed (compare channelView results).
 */
export function watchChannel(channel, onChange) {
    if (!channel)
        return () => { };
    const ch = channel;
    const offs = [ch.onStatus(onChange), ch.onRuntime(onChange), ch.onPresence(onChange), ch.subscribe(onChange)];
    return () => {
        for (const off of offs)
            off();
    };
}
/** The store of channel (null or undefined: a store that stays idle). */
export function channelStore(channel) {
    return {
        subscribe(listener) {
            let last = channelView(channel);
            return watchChannel(channel, () => {
                const next = channelView(channel);
                if (next === last)
                    return;
                last = next;
                listener(next);
            });
        },
        getState: () => channelView(channel),
    };
}
