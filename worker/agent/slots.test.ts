import { describe, expect, it } from 'vitest';
import { Slots } from './slots.js';

/** A step that runs until released; records when it started. */
function gate(log: string[], name: string): { fn: () => Promise<string>; release: () => void } {
  let release = (): void => undefined;
  const done = new Promise<void>((r) => (release = r));
  return {
    fn: async () => {
      log.push(name);
      await done;
      return name;
    },
    release: () => release(),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('Slots', () => {
  it('runs at most n steps at once, the others in call order, an urgent one first', async () => {
    const slots = new Slots(2);
    const log: string[] = [];
    const [a, b, c, d, u] = ['a', 'b', 'c', 'd', 'u'].map((n) => gate(log, n)) as [ReturnType<typeof gate>, ReturnType<typeof gate>, ReturnType<typeof gate>, ReturnType<typeof gate>, ReturnType<typeof gate>];
    const runs = [slots.run(a.fn), slots.run(b.fn), slots.run(c.fn), slots.run(d.fn), slots.run(u.fn, true)];
    await tick();
    expect(log).toEqual(['a', 'b']);
    a.release();
    await tick();
    expect(log).toEqual(['a', 'b', 'u']);
    b.release();
    await tick();
    expect(log).toEqual(['a', 'b', 'u', 'c']);
    for (const g of [c, d, u]) g.release();
    await tick();
    expect(log).toEqual(['a', 'b', 'u', 'c', 'd']);
    expect(await Promise.all(runs)).toEqual(['a', 'b', 'c', 'd', 'u']);
  });

  it('frees the slot of a step that fails', async () => {
    const slots = new Slots(1);
    await expect(slots.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await slots.run(() => Promise.resolve(7))).toBe(7);
  });
});
