/**
 * At most `n` steps at once, the others waiting in call order (an urgent one at the front). The
 * agent starts containers through it: with dozens of tasks assigned at once, unbounded prepares
 * only queue in the kernel and delay every container (bench/containers.ts found 8 at a time best
 * on two cores); a prepared container's start goes first, so containers run as soon as they can.
 */
export class Slots {
  private busy = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly n: number) {}

  async run<T>(fn: () => Promise<T>, urgent = false): Promise<T> {
    if (this.busy < this.n) this.busy++;
    else await new Promise<void>((resolve) => (urgent ? this.waiting.unshift(resolve) : this.waiting.push(resolve)));
    try {
      return await fn();
    } finally {
      // Hand the slot over to the next waiter, or free it.
      const next = this.waiting.shift();
      if (next) next();
      else this.busy--;
    }
  }
}
