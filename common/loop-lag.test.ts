import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';
import { LoopLagMonitor } from './loop-lag.js';

describe('LoopLagMonitor', () => {
  it('sees a stall of the event loop in the window, and starts a new window after take()', async () => {
    const m = new LoopLagMonitor(createLogger({ node: 't', component: 't', level: 'silent' }), 60_000);
    m.start();
    try {
      await new Promise((r) => setTimeout(r, 50));
      const end = Date.now() + 120;
      while (Date.now() < end) {
        // a stall of 120 ms
      }
      await new Promise((r) => setTimeout(r, 50));
      const lag = m.take();
      expect(lag.maxMs).toBeGreaterThanOrEqual(100);
      expect(lag.p50Ms).toBeLessThan(lag.maxMs);
      await new Promise((r) => setTimeout(r, 60));
      expect(m.take().maxMs).toBeLessThan(100);
    } finally {
      m.stop();
    }
  });
});
