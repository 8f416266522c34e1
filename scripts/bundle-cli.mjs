// After `tsc`: bundles swarmctl (dist/cli/swarmctl-main.js and everything it imports) into one
// CommonJS file, writes the runner that loads it with V8's code cache, and warms that cache once.
// cli/swarmctl.ts runs the bundle when it is there (see there for why). Run by `npm run build`
// and scripts/setup.sh; safe to run again.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const cli = join(dirname(dirname(fileURLToPath(import.meta.url))), 'dist', 'cli');
const main = join(cli, 'swarmctl-main.js');
const bundle = join(cli, 'swarmctl.bundle.cjs');
const runner = join(cli, 'swarmctl-bundle-run.cjs');
if (!existsSync(main)) {
  console.error(`bundle-cli: ${main} is missing: run tsc first`);
  process.exit(1);
}
rmSync(runner, { force: true }); // until the new bundle is whole, swarmctl runs the modules
rmSync(`${bundle}.cache`, { force: true });
// string-width (yargs's and cliui's, for laying out help text) builds an Intl.Segmenter and
// compiles Unicode property regular expressions in its module body: 25-30 ms here, paid by every
// command (yargs lays out the command's help text whenever it runs one, in case it fails later).
// Each import of it gets a stand-in that measures printable ASCII itself (its width is its
// length, whatever the options) and loads the real module on the first other string (esbuild
// evaluates a require()d ES module lazily).
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onResolve({ filter: /^string-width$/ }, async (args) => {
      if (args.pluginData?.real) return undefined;
      const real = await b.resolve('string-width', { resolveDir: args.resolveDir, kind: args.kind, pluginData: { real: true } });
      if (real.errors.length > 0) return { errors: real.errors };
      return { path: real.path, namespace: 'lazy-string-width' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-string-width' }, (args) => ({
      contents: [
        'let real;',
        'module.exports = function stringWidth(string, options) {',
        "  if (typeof string === 'string' && /^[\\x20-\\x7e]*$/.test(string)) return string.length;",
        `  real ??= require(${JSON.stringify(args.path)}).default;`,
        '  return real(string, options);',
        '};',
        '',
      ].join('\n'),
      loader: 'js',
      resolveDir: dirname(args.path),
    }));
  },
};

await build({
  entryPoints: [main],
  plugins: [lazyStringWidth],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: bundle,
  logLevel: 'error',
  // The modules find files next to themselves (nativeBinary, the package's version) from
  // import.meta.url: the bundle's own location stands in, in the same dist/cli directory.
  define: { 'import.meta.url': '__bundle_url' },
  banner: { js: "var __bundle_url = require('node:url').pathToFileURL(__filename).href;" },
});

// The runner: compiles the bundle with the cached code when it has it (V8 rejects a cache made
// for other source or another V8, and the runner then writes a new one), and writes the cache on
// exit when it had none, atomically (many swarmctl may run at once); a read-only install just
// runs without one.
writeFileSync(
  runner,
  `'use strict';
// Written by scripts/bundle-cli.mjs: runs swarmctl.bundle.cjs with V8's code cache.
const fs = require('node:fs');
const Module = require('node:module');
const vm = require('node:vm');
const file = require('node:path').join(__dirname, 'swarmctl.bundle.cjs');
const cacheFile = file + '.cache';
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
const script = new vm.Script(Module.wrap(fs.readFileSync(file, 'utf8')), { filename: file, cachedData });
if (cachedData === undefined || script.cachedDataRejected) {
  process.once('exit', () => {
    try {
      const tmp = cacheFile + '.' + process.pid;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      // not writable: run without a cache
    }
  });
}
const module_ = { exports: {} };
script.runInThisContext().call(module_.exports, module_.exports, Module.createRequire(file), module_, file, __dirname);
`,
);
// Warm the cache with a run that compiles the command tree.
const warm = spawnSync(process.execPath, [runner, 'service', '--help'], { encoding: 'utf8' });
if (warm.status !== 0) {
  rmSync(runner, { force: true });
  console.error(`bundle-cli: the bundle does not run: ${warm.stderr.trim()}`);
  process.exit(1);
}
