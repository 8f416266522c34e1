import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

/** A destination that collects what pino writes. */
function sink(isTTY = false): Writable & { isTTY: boolean; text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  }) as Writable & { isTTY: boolean; text: () => string };
  w.isTTY = isTTY;
  w.text = () => chunks.join('');
  return w;
}

describe('logger', () => {
  it('writes JSON lines that carry the node id and the component', () => {
    const out = sink();
    const log = createLogger({ node: 'n1', component: 'swarmd', destination: out });
    log.info({ port: 4242 }, 'hello');
    log.child({ component: 'raft' }).warn('term changed');
    const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ node: 'n1', component: 'swarmd', msg: 'hello', port: 4242, level: 30 });
    expect(lines[1]).toMatchObject({ node: 'n1', component: 'raft', msg: 'term changed', level: 40 });
    expect(typeof lines[0]!.time).toBe('string');
  });

  it('writes readable text on a terminal, still naming node and component', () => {
    const out = sink(true);
    createLogger({ node: 'n1', component: 'agent', destination: out }).info('task started');
    const text = out.text();
    expect(() => JSON.parse(text) as unknown).toThrow();
    expect(text).toContain('n1 agent: task started');
  });

  it('honours an explicit format and level', () => {
    const out = sink(true);
    const log = createLogger({ node: 'n2', component: 'cli', destination: out, format: 'json', level: 'warn' });
    log.info('dropped');
    log.error('kept');
    const lines = out.text().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ node: 'n2', component: 'cli', msg: 'kept' });
  });
});
