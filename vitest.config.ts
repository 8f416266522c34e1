import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // Forks, not threads: the lab relies on process-level signal handlers and on children that die
    // with their parent process (PR_SET_PDEATHSIG fires when the spawning thread exits).
    pool: 'forks',
    // Two cores: lab tests create namespaces and processes; keep the parallelism modest.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    globalSetup: ['test/global-setup.ts'],
  },
});
