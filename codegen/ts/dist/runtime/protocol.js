// The frames of protocol v1 (docs/PROTOCOL.md), as TypeScript types.
/**
 * Parses a server message: a whole frame, or one part of a batched frame.
 * It returns null for anything that is not a JSON object with a string
 * `type`; unknown types are returned as they are and ignored by the
 * connection (a newer server may add some).
 */
export function parseServerFrame(data) {
    const text = typeof data === "string" ? data : String(data);
    let m;
    try {
        m = JSON.parse(text);
    }
    catch {
        return null;
    }
    if (typeof m !== "object" || m === null || typeof m.type !== "string") {
        return null;
    }
    return m;
}
