/** Listeners with arguments A. Adding the same function twice adds it twice. */
export declare class Listeners<A extends unknown[]> {
    #private;
    /** How many listeners are registered. */
    get size(): number;
    /** Adds fn; the returned function removes it and may be called more than once. */
    add(fn: (...args: A) => void): () => void;
    /** Calls every listener registered when emit starts. */
    emit(...args: A): void;
    /** Removes every listener. */
    clear(): void;
}
/** Reports err asynchronously, as an exception thrown by an event listener is. */
export declare function report(err: unknown): void;
