// The public API of the rxgorm runtime. The React hook has its own entry,
// react.ts, so that this one does not need React.

export { PROTOCOL_VERSION, ErrorCode, CloseCode, CLOSE_ABNORMAL, isErrorCode } from "./codes.js";
export { RxError } from "./errors.js";
export type { ChannelModel, Layer, Relation } from "./model.js";
export type { Instance } from "./protocol.js";
export {
  Connection,
  backoffDelay,
  type ConnectionStatus,
  type ConnectOptions,
  type ConnectionOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./connection.js";
export { Subscription, type SubscriptionStatus } from "./subscription.js";
export { ContextChannel } from "./channel.js";
export { Store, instanceKey } from "./store.js";
