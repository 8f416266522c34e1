// The manager's resolver against a real registry on loopback (Debian's docker-registry with
// htpasswd auth): the digest a tag names now, with the credential only when it is for that
// registry, and the registry's refusal as the error.
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { pushBusyboxImage } from '../../test/registry/image.js';
import { htpasswdFile, registryAvailable, startRegistry, type Registry } from '../../test/registry/registry.js';
import { RegistryClient } from '../../worker/image/distribution.js';
import { RegistryImageResolver } from './image-resolver.js';

let registry: Registry;
let host = '';
let digest = '';
let auth: RegistryAuth;

beforeAll(async () => {
  if (!registryAvailable()) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
  registry = await startRegistry({
    auth: async (dir) => {
      await writeFile(path.join(dir, 'htpasswd'), htpasswdFile({ alice: 'wonderland' }));
      return { htpasswd: { path: path.join(dir, 'htpasswd') } };
    },
  });
  host = new URL(registry.url).host;
  auth = { serverAddress: host, username: 'alice', password: 'wonderland', identityToken: '' };
  digest = (await pushBusyboxImage(new RegistryClient({ url: registry.url, username: 'alice', password: 'wonderland' }), 'team/app', 't')).manifestDigest;
}, 30_000);

afterAll(async () => {
  await registry?.stop();
});

describe('RegistryImageResolver', () => {
  it("resolves a tag to the digest its registry has now, with the service's credential", async () => {
    const r = new RegistryImageResolver({ defaultRegistry: '' });
    expect(await r.digestOf(`${host}/team/app:t`, auth)).toBe(digest);
    // a name without a registry goes to the default registry, as the agents pull it
    expect(await new RegistryImageResolver({ defaultRegistry: registry.url }).digestOf('team/app:t', auth)).toBe(digest);
  });

  it("refuses with the registry's reason without a credential, or with one for another registry (never sent there)", async () => {
    const r = new RegistryImageResolver({ defaultRegistry: '' });
    await expect(r.digestOf(`${host}/team/app:t`, undefined)).rejects.toThrow(`registry ${host}, repository team/app, t: GET failed: unauthorized: authentication required (HTTP 401)`);
    await expect(r.digestOf(`${host}/team/app:t`, { ...auth, serverAddress: '127.0.0.1:1' })).rejects.toThrow(/unauthorized: authentication required \(HTTP 401\)$/);
    await expect(r.digestOf(`${host}/team/app:nope`, auth)).rejects.toThrow(/manifest unknown/);
  });
});

describe('RegistryImageResolver time bound', () => {
  it('gives up after its time, on a registry that accepts the connection and never answers', async () => {
    const server = createServer(() => undefined); // accepts, says nothing
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const started = Date.now();
      await expect(new RegistryImageResolver({ defaultRegistry: '', timeoutMs: 300 }).digestOf(`127.0.0.1:${port}/app:t`, undefined)).rejects.toThrow(`registry 127.0.0.1:${port} did not answer within 300 ms`);
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    }
  });
});
