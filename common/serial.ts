// One async step at a time, in call order: what an in-process lock around read-modify-write of a
// state file needs. A failed step does not stop the ones queued after it.
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => T | Promise<T>): Promise<T> {
    const next = this.tail.then(fn);
    this.tail = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }
}
