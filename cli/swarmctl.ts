#!/usr/bin/env node
// swarmctl's entry point. The program is cli/swarmctl-main.ts; the build also bundles it into
// one CommonJS file with V8's code cache beside it (scripts/bundle-cli.mjs), which this runs when
// present and not older than the modules (tsc rewrites every file it emits, so a tsc run after
// the bundle makes the bundle stale): Node 20 has no compile cache for ES modules, and loading
// swarmctl's modules (yargs, grpc-js, the generated protobuf code) was most of every command's
// time — about 0.3 s against 0.15 s for the cached bundle here. SWARMCTL_MODULES=1 runs the
// modules instead.
import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = (name: string): string => fileURLToPath(new URL(name, import.meta.url));
const mtime = (file: string): number => statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? -1;
const runner = here('./swarmctl-bundle-run.cjs');
const fresh = mtime(runner) >= 0 && mtime(here('./swarmctl.bundle.cjs')) >= mtime(here('./swarmctl-main.js'));
if (process.env.SWARMCTL_MODULES !== '1' && fresh) createRequire(import.meta.url)(runner);
else await import('./swarmctl-main.js');
