// A set of listeners, called in the order they were added. A listener that
// throws does not stop the others: its error is reported asynchronously
// (reportError in browsers, an uncaught exception elsewhere), as an
// EventTarget would.

type Entry<A extends unknown[]> = { readonly fn: (...args: A) => void };

/** Listeners with arguments A. Adding the same function twice adds it twice. */
export class Listeners<A extends unknown[]> {
  readonly #set = new Set<Entry<A>>();

  /** How many listeners are registered. */
  get size(): number {
    return this.#set.size;
  }

  /** Adds fn; the returned function removes it and may be called more than once. */
  add(fn: (...args: A) => void): () => void {
    const entry: Entry<A> = { fn };
    this.#set.add(entry);
    return () => {
      this.#set.delete(entry);
    };
  }

  /** Calls every listener registered when emit starts. */
  emit(...args: A): void {
    for (const entry of [...this.#set]) {
      if (!this.#set.has(entry)) continue; // removed by an earlier listener
      try {
        entry.fn(...args);
      } catch (err) {
        report(err);
      }
    }
  }

  /** Removes every listener. */
  clear(): void {
    this.#set.clear();
  }
}

/** Reports err asynchronously, as an exception thrown by an event listener is. */
export function report(err: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (typeof g.reportError === "function") {
    g.reportError(err);
    return;
  }
  setTimeout(() => {
    throw err;
  }, 0);
}
