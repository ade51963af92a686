import { ErrorCode } from "./codes.js";
/**
 * The one error type of the runtime: a stable protocol code and the server's
 * public message. Action promises reject with it, and subscriptions and the
 * connection report it as their `error`.
 *
 * Errors the runtime makes itself keep to the server's codes:
 * - a call in flight when the socket closes: `internal`, "connection lost";
 * - the server closed the socket with 4001: `unauthenticated`;
 * - the server closed with 4002, 1008 or 1009: `bad_request`;
 * - a call on a channel without subscribers: `not_found`.
 * `closeCode` is set when the error comes from a close of the socket.
 */
export declare class RxError extends Error {
    /** The stable code; unknown codes from a newer server become `internal`. */
    readonly code: ErrorCode;
    /** The WebSocket close code, when the error comes from one. */
    readonly closeCode: number | undefined;
    constructor(code: ErrorCode, message: string, closeCode?: number);
    /** Builds an RxError from a wire error body ({code, message}). */
    static fromWire(body: unknown): RxError;
}
