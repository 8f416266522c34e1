// Builds the busybox image the tests, benchmarks and the demo run (Debian's busybox-static: sh,
// sleep, httpd, nc, wget, nslookup, ping ...) as an OCI image layout on disk, once, at set-up:
//   node dist/scripts/build-image.js [DIR]     (default build/images/busybox)
// Whoever needs it in a registry pushes the layout with our distribution client
// (test/registry/image.ts: pushLayout / pushBusyboxImage), to a registry started on loopback.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUSYBOX, busyboxAvailable, busyboxLayer, buildImage, writeLayout } from '../test/registry/image.js';

const root = join(fileURLToPath(import.meta.url), '../../..');
const dir = process.argv[2] ?? join(root, 'build/images/busybox');
if (!busyboxAvailable()) {
  process.stderr.write(`build-image: ${BUSYBOX} is missing (Debian package busybox-static)\n`);
  process.exit(1);
}
const img = buildImage([busyboxLayer()]);
writeLayout(dir, img, 'latest');
process.stdout.write(`${dir}: busybox image ${img.manifestDigest}\n`);
