// The public API of the rxgorm runtime, with the framework-agnostic store
// (channelStore). The bindings have their own entries, so that this one
// needs no framework: react.ts (useChannel), vue.ts (useChannel) and
// svelte.ts (readableChannel).

export { PROTOCOL_VERSION, ErrorCode, CloseCode, CLOSE_ABNORMAL, isErrorCode } from "./codes.js";
export { RxError } from "./errors.js";
export type { ChannelModel, CreateModel, Layer, Relation, WriteModel } from "./model.js";
export type { Instance, Present } from "./protocol.js";
export {
  Connection,
  backoffDelay,
  type ConnectionStatus,
  type ConnectOptions,
  type ConnectionOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./connection.js";
export { Subscription, type SubscriptionStatus, type WriteRequest } from "./subscription.js";
export { ContextChannel, type NoWrites, type Writes } from "./channel.js";
export { Store, instanceKey, type Patch, type PatchParent } from "./store.js";
export { channelStore, channelView, watchChannel, IDLE_VIEW, type ChannelStore, type ChannelView } from "./view.js";
