// The public API of the rxgorm runtime, with the framework-agnostic store
// (channelStore). The bindings have their own entries, so that this one
// needs no framework: react.ts (useChannel), vue.ts (useChannel) and
// svelte.ts (readableChannel).
export { PROTOCOL_VERSION, ErrorCode, CloseCode, CLOSE_ABNORMAL, isErrorCode } from "./codes.js";
export { RxError } from "./errors.js";
export { Connection, backoffDelay, } from "./connection.js";
export { Subscription } from "./subscription.js";
export { ContextChannel } from "./channel.js";
export { Store, instanceKey } from "./store.js";
export { channelStore, channelView, watchChannel, IDLE_VIEW } from "./view.js";
