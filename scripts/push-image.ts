// Pushes an OCI image layout (as scripts/build-image.ts writes it) to a registry with our
// distribution client:
//   node dist/scripts/push-image.js LAYOUT-DIR REGISTRY-URL REPOSITORY[:TAG]
// e.g. node dist/scripts/push-image.js build/images/busybox http://10.77.0.11:5000 library/busybox:latest
import { RegistryClient } from '../worker/image/distribution.js';
import { pushImage, readLayout } from '../test/registry/image.js';

const [dir, url, target] = process.argv.slice(2);
if (!dir || !url || !target) {
  process.stderr.write('usage: push-image LAYOUT-DIR REGISTRY-URL REPOSITORY[:TAG]\n');
  process.exit(2);
}
const colon = target.lastIndexOf(':');
const [repo, tag] = colon > 0 ? [target.slice(0, colon), target.slice(colon + 1)] : [target, 'latest'];
try {
  const digest = await pushImage(new RegistryClient({ url }), repo, tag, readLayout(dir));
  process.stdout.write(`${url}/${repo}:${tag} ${digest}\n`);
} catch (err) {
  process.stderr.write(`push-image: ${(err as Error).message}\n`);
  process.exit(1);
}
