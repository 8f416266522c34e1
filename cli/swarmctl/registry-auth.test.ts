// Reading the client's Docker configuration for --with-registry-auth, as the docker CLI writes it:
// where the file is, which entry goes with an image, the three forms of a credential, and one
// clear error (file, key, rule) for everything it cannot use.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ResolveImage } from '../../proto/gen/tswarm/control.js';
import { credentialFromConfig, dockerConfigPath, readRegistryAuth, RegistryAuthError, resolveImageMode } from './registry-auth.js';
import { FlagError } from './service-spec.js';

const F = '/home/u/.docker/config.json';
const b64 = (s: string): string => Buffer.from(s).toString('base64');
const config = (o: unknown): string => JSON.stringify(o);

function refusal(fn: () => unknown): RegistryAuthError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(RegistryAuthError);
    expect(err).toBeInstanceOf(FlagError); // bad usage: exit 2
    return err as RegistryAuthError;
  }
  throw new Error('no error');
}

describe('dockerConfigPath', () => {
  it('is $DOCKER_CONFIG/config.json, else ~/.docker/config.json', () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: '/etc/ci-docker' }, '/home/u')).toBe('/etc/ci-docker/config.json');
    expect(dockerConfigPath({}, '/home/u')).toBe('/home/u/.docker/config.json');
  });
});

describe('credentialFromConfig', () => {
  it('reads auth (base64 of user:password), for the image registry host', () => {
    const text = config({ auths: { '10.0.0.1:5000': { auth: b64('alice:pass:with:colons') }, 'other:5000': { auth: b64('bob:x') } } });
    expect(credentialFromConfig(text, F, '10.0.0.1:5000/team/app:t')).toEqual({ serverAddress: '10.0.0.1:5000', username: 'alice', password: 'pass:with:colons', identityToken: '' });
  });

  it('reads username and password, and an identity token', () => {
    expect(credentialFromConfig(config({ auths: { 'reg.example': { username: 'u', password: 'p' } } }), F, 'reg.example/app')).toMatchObject({ username: 'u', password: 'p' });
    expect(credentialFromConfig(config({ auths: { 'reg.example': { identitytoken: 'refresh' } } }), F, 'reg.example/app')).toEqual({ serverAddress: 'reg.example', username: '', password: '', identityToken: 'refresh' });
    expect(credentialFromConfig(config({ auths: { 'reg.example': { auth: b64('u:'), identitytoken: 'refresh' } } }), F, 'reg.example/app')).toMatchObject({ username: 'u', identityToken: 'refresh' });
  });

  it("takes Docker Hub's entry (https://index.docker.io/v1/) for bare and docker.io names", () => {
    const text = config({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:pw') } } });
    for (const image of ['busybox', 'team/app:1', 'docker.io/team/app']) expect(credentialFromConfig(text, F, image)).toMatchObject({ serverAddress: 'registry-1.docker.io', username: 'hub' });
  });

  it('matches a key written as a URL by its host', () => {
    expect(credentialFromConfig(config({ auths: { 'https://10.0.0.1:5000/': { auth: b64('a:b') } } }), F, '10.0.0.1:5000/app')).toMatchObject({ username: 'a' });
  });

  it('refuses a missing entry, naming the file, the key and what to do', () => {
    const e = refusal(() => credentialFromConfig(config({ auths: { 'other:5000': { auth: b64('a:b') } } }), F, '10.0.0.1:5000/app'));
    expect(e.message).toBe(`--with-registry-auth: ${F}: has no credential for 10.0.0.1:5000 (auths["10.0.0.1:5000"]); log in first: docker login 10.0.0.1:5000`);
    expect([e.file, e.key]).toEqual([F, '10.0.0.1:5000']);
    expect(refusal(() => credentialFromConfig('{}', F, 'busybox')).message).toBe(`--with-registry-auth: ${F}: has no credential for registry-1.docker.io (auths["https://index.docker.io/v1/"]); log in first: docker login`);
  });

  it('refuses credential helpers, saying they are not supported', () => {
    expect(refusal(() => credentialFromConfig(config({ auths: { 'reg.example': {} }, credsStore: 'desktop' }), F, 'reg.example/app')).message).toBe(
      `--with-registry-auth: ${F}: "credsStore": "desktop" keeps credentials in the helper docker-credential-desktop; credential helpers are not supported: put the credential in auths["reg.example"] (docker login with no helper configured writes it there)`,
    );
    expect(refusal(() => credentialFromConfig(config({ auths: {}, credHelpers: { 'reg.example': 'ecr-login' } }), F, 'reg.example/app')).message).toMatch(
      /credHelpers\["reg\.example"\] gives the credential for reg\.example to the helper docker-credential-ecr-login; credential helpers are not supported/,
    );
    // a helper for another registry does not matter
    expect(credentialFromConfig(config({ auths: { 'reg.example': { auth: b64('a:b') } }, credHelpers: { 'gcr.io': 'gcr' } }), F, 'reg.example/app')).toMatchObject({ username: 'a' });
  });

  it('refuses a malformed file or entry, naming the file and the rule', () => {
    expect(refusal(() => credentialFromConfig('{not json', F, 'reg.example/app')).message).toMatch(new RegExp(`^--with-registry-auth: ${F}: is not JSON \\(`));
    expect(refusal(() => credentialFromConfig('[]', F, 'reg.example/app')).message).toBe(`--with-registry-auth: ${F}: must hold a JSON object`);
    expect(refusal(() => credentialFromConfig(config({ auths: [] }), F, 'reg.example/app')).message).toBe(`--with-registry-auth: ${F}: "auths" must be an object`);
    expect(refusal(() => credentialFromConfig(config({ auths: { 'reg.example': { auth: b64('no-colon') } } }), F, 'reg.example/app')).message).toBe(
      `--with-registry-auth: ${F}: auths["reg.example"].auth must be the base64 of user:password`,
    );
    expect(refusal(() => credentialFromConfig(config({ auths: { 'reg.example': { auth: 42 } } }), F, 'reg.example/app')).message).toMatch(/auths\["reg\.example"\]\.auth must be a string/);
    expect(refusal(() => credentialFromConfig(config({ auths: { 'reg.example': {} } }), F, 'reg.example/app')).message).toMatch(
      /auths\["reg\.example"\] holds no credential: it needs "auth" \(base64 of user:password\), "username" and "password", or "identitytoken"/,
    );
  });
});

describe('readRegistryAuth', () => {
  it('reads the file DOCKER_CONFIG names, and says when there is none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'docker-config-'));
    try {
      expect(refusal(() => readRegistryAuth('reg.example/app', { DOCKER_CONFIG: dir })).message).toBe(
        `--with-registry-auth: ${join(dir, 'config.json')}: does not exist, so it has no credential for reg.example (auths["reg.example"]); log in first (docker login), or set DOCKER_CONFIG to the directory that holds config.json`,
      );
      writeFileSync(join(dir, 'config.json'), config({ auths: { 'reg.example': { auth: b64('a:b') } } }));
      expect(readRegistryAuth('reg.example/app', { DOCKER_CONFIG: dir })).toMatchObject({ serverAddress: 'reg.example', username: 'a', password: 'b' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('resolveImageMode', () => {
  it("maps the flag's choices (always by default)", () => {
    expect([undefined, 'always', 'changed', 'never'].map(resolveImageMode)).toEqual([ResolveImage.RESOLVE_IMAGE_ALWAYS, ResolveImage.RESOLVE_IMAGE_ALWAYS, ResolveImage.RESOLVE_IMAGE_CHANGED, ResolveImage.RESOLVE_IMAGE_NEVER]);
  });
});
