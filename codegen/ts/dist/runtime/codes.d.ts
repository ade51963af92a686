/** The wire protocol version this runtime speaks (the `v` of hello). */
export declare const PROTOCOL_VERSION = 1;
/** Stable error codes carried by `error` frames and failed `result`s. */
export declare const ErrorCode: {
    /** No or invalid credentials. */
    readonly Unauthenticated: "unauthenticated";
    /** The user may not do this. */
    readonly Forbidden: "forbidden";
    /** Unknown channel, anchor or subscription. */
    readonly NotFound: "not_found";
    /** Malformed or mistyped input. */
    readonly BadRequest: "bad_request";
    /** The channel has no such action. */
    readonly UnknownAction: "unknown_action";
    /** A server fault (details are in the server log), or the connection was lost. */
    readonly Internal: "internal";
    /** The client could not keep up; the runtime resubscribes with `since`. */
    readonly Overloaded: "overloaded";
    /** The answer (a call's result) was over the server's size limit. */
    readonly TooLarge: "too_large";
};
/** One of the stable error codes. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
/** Reports whether s is one of the protocol's error codes. */
export declare function isErrorCode(s: unknown): s is ErrorCode;
/** WebSocket close codes the server uses. */
export declare const CloseCode: {
    /** Normal closure: stop. */
    readonly Normal: 1000;
    /** Server going away (shutdown): reconnect and resume. */
    readonly GoingAway: 1001;
    /** Repeated protocol errors: stop. */
    readonly PolicyViolation: 1008;
    /** A frame larger than the server's read limit: stop. */
    readonly TooLarge: 1009;
    /** Authentication failed or timed out: stop until there is a new token. */
    readonly AuthFailed: 4001;
    /** Unsupported protocol version: stop. */
    readonly BadVersion: 4002;
    /** The client fell behind, nothing was lost: reconnect and resume. */
    readonly SlowClient: 4008;
};
/** One of the server's close codes. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
/**
 * The code a browser reports when a socket ended without a close frame
 * (network loss, killed server). Never sent by the server; the runtime
 * reconnects and resumes.
 */
export declare const CLOSE_ABNORMAL = 1006;
