import { ErrorCode, isErrorCode } from "./codes.js";
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
export class RxError extends Error {
    /** The stable code; unknown codes from a newer server become `internal`. */
    code;
    /** The WebSocket close code, when the error comes from one. */
    closeCode;
    constructor(code, message, closeCode) {
        super(message);
        this.name = "RxError";
        this.code = code;
        this.closeCode = closeCode;
    }
    /** Builds an RxError from a wire error body ({code, message}). */
    static fromWire(body) {
        const b = (typeof body === "object" && body !== null ? body : {});
        const message = typeof b.message === "string" ? b.message : "";
        if (isErrorCode(b.code))
            return new RxError(b.code, message);
        const shown = typeof b.code === "string" ? `${b.code}: ${message}` : message;
        return new RxError(ErrorCode.Internal, shown);
    }
}
