/**
 * A mailbox: what one side delivers and one coroutine consumes, in order, as an async generator.
 *
 * The actor runs every connection as a coroutine of the form `for await (const x of mailbox) { ... }`.
 * The coroutine yields to the event loop whenever its mailbox is empty, so thousands of them share one
 * thread cooperatively; an idle connection costs one pending promise.
 */
export class Mailbox<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private closed = false;

  /** Delivers an item; wakes the consumer if it is waiting. */
  put(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    this.notify();
  }

  /** No more items will come: the consumer's loop ends once it has taken what is queued. */
  close(): void {
    this.closed = true;
    this.notify();
  }

  /** Drops everything, queued items included: the consumer's loop ends at its next step. */
  discard(): void {
    this.items.length = 0;
    this.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      if (this.items.length > 0) {
        yield this.items.shift() as T;
        continue;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private notify(): void {
    const wake = this.wake;
    if (wake) {
      this.wake = null;
      wake();
    }
  }
}
