// Protocol constants shared with the Go server (docs/PROTOCOL.md). The
// strings and numbers are identical to rx.Code* and channel.Close*.
/** The wire protocol version this runtime speaks (the `v` of hello). */
export const PROTOCOL_VERSION = 1;
/** Stable error codes carried by `error` frames and failed `result`s. */
export const ErrorCode = {
    /** No or invalid credentials. */
    Unauthenticated: "unauthenticated",
    /** The user may not do this. */
    Forbidden: "forbidden",
    /** Unknown channel, anchor or subscription. */
    NotFound: "not_found",
    /** Malformed or mistyped input. */
    BadRequest: "bad_request",
    /** The channel has no such action. */
    UnknownAction: "unknown_action",
    /** A server fault (details are in the server log), or the connection was lost. */
    Internal: "internal",
    /** The client could not keep up; the runtime resubscribes with `since`. */
    Overloaded: "overloaded",
    /** The answer (a call's result) was over the server's size limit. */
    TooLarge: "too_large",
};
const errorCodes = new Set(Object.values(ErrorCode));
/** Reports whether s is one of the protocol's error codes. */
export function isErrorCode(s) {
    return typeof s === "string" && errorCodes.has(s);
}
/** WebSocket close codes the server uses. */
export const CloseCode = {
    /** Normal closure: stop. */
    Normal: 1000,
    /** Server going away (shutdown): reconnect and resume. */
    GoingAway: 1001,
    /** Repeated protocol errors: stop. */
    PolicyViolation: 1008,
    /** A frame larger than the server's read limit: stop. */
    TooLarge: 1009,
    /** Authentication failed or timed out: stop until there is a new token. */
    AuthFailed: 4001,
    /** Unsupported protocol version: stop. */
    BadVersion: 4002,
    /** The client fell behind, nothing was lost: reconnect and resume. */
    SlowClient: 4008,
};
/**
 * The code a browser reports when a socket ended without a close frame
 * (network loss, killed server). Never sent by the server; the runtime
 * reconnects and resumes.
 */
export const CLOSE_ABNORMAL = 1006;
