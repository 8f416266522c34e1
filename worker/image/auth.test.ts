// Registry auth against real registries (Debian's docker-registry on loopback), each checking its
// clients itself: one with htpasswd (basic auth, bcrypt hashes), one with `auth: token` trusting
// the JWTs of the test's own token server (test/registry/token-server.ts). Anonymous clients, good
// and bad passwords, and an identity token exchanged with Docker's OAuth2 POST.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pushBusyboxImage } from '../../test/registry/image.js';
import { htpasswdFile, registryAvailable, startRegistry, type Registry } from '../../test/registry/registry.js';
import { startTokenServer, type TokenServer } from '../../test/registry/token-server.js';
import { writeFile } from 'node:fs/promises';
import { RegistryClient, RegistryError } from './distribution.js';
import { ImageStore } from './store.js';

const USERS = { alice: 'wonderland', bob: 'builder:with:colons' };
const IDENTITY_TOKEN = 'refresh-0123456789abcdef';
const dirs: string[] = [];

async function newStore(): Promise<ImageStore> {
  const d = await mkdtemp(path.join(tmpdir(), 'tswarm-store-'));
  dirs.push(d);
  return new ImageStore(d);
}

async function refusal(p: Promise<unknown>): Promise<RegistryError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RegistryError);
  return err as RegistryError;
}

let basic: Registry;
let token: Registry;
let tokens: TokenServer;

beforeAll(async () => {
  if (!registryAvailable()) throw new Error('docker-registry is not installed (apt-get install docker-registry)');
  basic = await startRegistry({
    auth: async (dir) => {
      await writeFile(path.join(dir, 'htpasswd'), htpasswdFile(USERS));
      return { htpasswd: { path: path.join(dir, 'htpasswd') } };
    },
  });
  token = await startRegistry({
    auth: async (dir) => {
      tokens = await startTokenServer({ certPath: path.join(dir, 'token.pem'), service: 'tswarm-test', issuer: 'tswarm-test-issuer', users: USERS, identityTokens: { [IDENTITY_TOKEN]: 'alice' } });
      return { token: { realm: tokens.realm, service: 'tswarm-test', issuer: 'tswarm-test-issuer', rootCertBundle: path.join(dir, 'token.pem') } };
    },
  });
  await pushBusyboxImage(new RegistryClient({ url: basic.url, username: 'alice', password: USERS.alice }), 'private/busybox', 'latest');
  await pushBusyboxImage(new RegistryClient({ url: token.url, username: 'bob', password: USERS.bob }), 'private/busybox', 'latest');
}, 60_000);

afterAll(async () => {
  await tokens?.close();
  await basic?.stop();
  await token?.stop();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('basic auth (htpasswd)', () => {
  it('refuses an anonymous client with the registry reason and status', async () => {
    const err = await refusal(new RegistryClient({ url: basic.url }).getManifest('private/busybox', 'latest'));
    expect(err.status).toBe(401);
    expect(err.message).toBe(`registry ${new URL(basic.url).host}, repository private/busybox, latest: GET failed: unauthorized: authentication required (HTTP 401)`);
  });

  it('refuses a wrong password the same way', async () => {
    const err = await refusal(new RegistryClient({ url: basic.url, username: 'alice', password: 'nope' }).getManifest('private/busybox', 'latest'));
    expect(err.message).toMatch(/GET failed: unauthorized: authentication required \(HTTP 401\)$/);
  });

  it('pulls with the right credentials, sending them after the challenge', async () => {
    const seen: Record<string, string>[] = [];
    const client = new RegistryClient({ url: basic.url, username: 'alice', password: USERS.alice, onRequest: (_m, _u, h) => seen.push(h) });
    const r = await (await newStore()).pull(client, 'private/busybox', 'latest');
    expect(r.image.layers).toHaveLength(1);
    expect(seen[0]!.authorization).toBeUndefined();
    expect(seen.slice(1).every((h) => h.authorization === `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`)).toBe(true);
  });

  it('says an identity token cannot answer a basic challenge', async () => {
    const err = await refusal(new RegistryClient({ url: basic.url, identityToken: IDENTITY_TOKEN }).getManifest('private/busybox', 'latest'));
    expect(err.message).toMatch(/unauthorized: authentication required \(the registry asks for basic auth, which an identity token cannot answer\) \(HTTP 401\)$/);
  });
});

describe('bearer tokens (auth: token)', () => {
  it('gets an anonymous token, which the registry refuses with its reason', async () => {
    const before = tokens.requests.length;
    const err = await refusal(new RegistryClient({ url: token.url }).getManifest('private/busybox', 'latest'));
    expect(err.status).toBe(401);
    expect(err.message).toBe(`registry ${new URL(token.url).host}, repository private/busybox, latest: GET failed: unauthorized: authentication required (HTTP 401)`);
    expect(tokens.requests.slice(before)).toEqual([{ method: 'GET', user: undefined, grantType: undefined, clientId: undefined, scope: 'repository:private/busybox:pull', status: 200 }]);
  });

  it('pulls with a token got with basic credentials', async () => {
    const before = tokens.requests.length;
    const r = await (await newStore()).pull(new RegistryClient({ url: token.url, username: 'alice', password: USERS.alice }), 'private/busybox', 'latest');
    expect(r.image.layers).toHaveLength(1);
    expect(tokens.requests.slice(before).map((q) => [q.method, q.user, q.status])).toEqual([['GET', 'alice', 200]]);
  });

  it("names the token server and its reason when it refuses a password", async () => {
    const err = await refusal(new RegistryClient({ url: token.url, username: 'alice', password: 'nope' }).getManifest('private/busybox', 'latest'));
    expect(err.message).toBe(
      `registry ${new URL(token.url).host}, repository private/busybox, latest: token request to ${new URL(tokens.realm).origin} refused: incorrect username or password (HTTP 401)`,
    );
  });

  it("exchanges an identity token with Docker's OAuth2 POST (grant_type=refresh_token)", async () => {
    const before = tokens.requests.length;
    const r = await (await newStore()).pull(new RegistryClient({ url: token.url, identityToken: IDENTITY_TOKEN }), 'private/busybox', 'latest');
    expect(r.image.layers).toHaveLength(1);
    expect(tokens.requests.slice(before)).toEqual([{ method: 'POST', user: 'alice', grantType: 'refresh_token', clientId: 'tswarm', scope: 'repository:private/busybox:pull', status: 200 }]);
    const err = await refusal(new RegistryClient({ url: token.url, identityToken: 'stale' }).getManifest('private/busybox', 'latest'));
    expect(err.message).toMatch(/token request to http:\/\/127\.0\.0\.1:\d+ refused: invalid refresh token \(HTTP 401\)$/);
  });
});
