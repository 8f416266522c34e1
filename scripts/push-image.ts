// Pushes an OCI image layout (as scripts/build-image.ts writes it) to a registry with our
// distribution client:
//   node dist/scripts/push-image.js [--user USER:PASSWORD] LAYOUT-DIR REGISTRY-URL REPOSITORY[:TAG]
// e.g. node dist/scripts/push-image.js build/images/busybox http://10.77.0.11:5000 library/busybox:latest
// --user: for a registry that wants credentials (basic auth, or a token realm that takes them).
import { RegistryClient } from '../worker/image/distribution.js';
import { pushImage, readLayout } from '../test/registry/image.js';

const args = process.argv.slice(2);
let user: string | undefined;
if (args[0] === '--user') {
  user = args[1];
  args.splice(0, 2);
}
const [dir, url, target] = args;
if (!dir || !url || !target || (user !== undefined && !user.includes(':'))) {
  process.stderr.write('usage: push-image [--user USER:PASSWORD] LAYOUT-DIR REGISTRY-URL REPOSITORY[:TAG]\n');
  process.exit(2);
}
const colon = target.lastIndexOf(':');
const [repo, tag] = colon > 0 ? [target.slice(0, colon), target.slice(colon + 1)] : [target, 'latest'];
const credentials = user === undefined ? {} : { username: user.slice(0, user.indexOf(':')), password: user.slice(user.indexOf(':') + 1) };
try {
  const digest = await pushImage(new RegistryClient({ url, ...credentials }), repo, tag, readLayout(dir));
  process.stdout.write(`${url}/${repo}:${tag} ${digest}\n`);
} catch (err) {
  process.stderr.write(`push-image: ${(err as Error).message}\n`);
  process.exit(1);
}
