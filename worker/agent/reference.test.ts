// Image references, parsed only: nothing here contacts a registry.
import { describe, expect, it } from 'vitest';
import { hasDigest, parseImageReference, pinnedReference, sameRegistry } from '../../common/image-reference.js';
import { parseImageRef } from './reference.js';

const HUB = 'https://registry-1.docker.io';
const DIGEST = 'sha256:' + 'a'.repeat(64);

describe('parseImageRef', () => {
  it('maps names without a registry, and docker.io/NAME, to Docker Hub as Docker does', () => {
    expect(parseImageRef('busybox', '')).toEqual({ registry: HUB, host: 'registry-1.docker.io', repository: 'library/busybox', reference: 'latest' });
    expect(parseImageRef('library/busybox:1.36', '')).toEqual({ registry: HUB, host: 'registry-1.docker.io', repository: 'library/busybox', reference: '1.36' });
    expect(parseImageRef('team/app:2', '')).toMatchObject({ registry: HUB, repository: 'team/app', reference: '2' });
    expect(parseImageRef('docker.io/busybox', '')).toMatchObject({ registry: HUB, repository: 'library/busybox' });
    expect(parseImageRef('index.docker.io/team/app', '')).toMatchObject({ registry: HUB, repository: 'team/app' });
    // docker.io is Docker Hub even where a default registry replaces it for names without one
    expect(parseImageRef('docker.io/busybox', 'http://10.0.0.5:5000')).toMatchObject({ registry: HUB, repository: 'library/busybox' });
  });

  it('uses --default-registry for names without a registry', () => {
    expect(parseImageRef('busybox', 'http://10.0.0.5:5000/')).toEqual({ registry: 'http://10.0.0.5:5000', host: '10.0.0.5:5000', repository: 'library/busybox', reference: 'latest' });
    expect(parseImageRef('team/app:t', 'https://mirror.example')).toMatchObject({ registry: 'https://mirror.example', repository: 'team/app', reference: 't' });
  });

  it('reads a named registry (plain HTTP for an IP address or localhost) and keeps its paths as given', () => {
    expect(parseImageRef('10.77.0.11:5000/library/busybox:latest', '')).toEqual({ registry: 'http://10.77.0.11:5000', host: '10.77.0.11:5000', repository: 'library/busybox', reference: 'latest' });
    expect(parseImageRef('localhost:5000/app', '')).toMatchObject({ registry: 'http://localhost:5000', repository: 'app', reference: 'latest' });
    expect(parseImageRef('localhost/app', '')).toMatchObject({ registry: 'http://localhost', repository: 'app' });
    expect(parseImageRef('reg.example/team/app@' + DIGEST, '')).toEqual({ registry: 'https://reg.example', host: 'reg.example', repository: 'team/app', reference: DIGEST });
    expect(parseImageRef('Reg/app', '').registry).toBe('https://Reg');
  });

  it('pulls the digest of name:tag@digest', () => {
    expect(parseImageRef('10.0.0.1:5000/app:t@' + DIGEST, '')).toMatchObject({ repository: 'app', reference: DIGEST });
    expect(parseImageReference('10.0.0.1:5000/app:t@' + DIGEST)).toEqual({ domain: '10.0.0.1:5000', path: 'app', tag: 't', digest: DIGEST });
  });

  it('names the field and the rule when the reference is bad', () => {
    expect(() => parseImageRef('', '')).toThrow(/^spec\.task\.container\.image: "" is not an image reference/);
    expect(() => parseImageRef('Busy Box', '')).toThrow(/is not an image reference/);
    expect(() => parseImageRef('busybox@sha256:xyz', '')).toThrow(/the digest must be sha256/);
    expect(() => parseImageRef('UPPER/Case', '')).toThrow(/"Case" is not a repository name/);
    expect(() => parseImageRef('busybox:-x', '')).toThrow(/"-x" is not a tag/);
    expect(() => parseImageRef('a..b', '')).toThrow(/is not a repository name/);
  });
});

describe('pinning and credentials', () => {
  it('pins a reference as Docker writes it: the name as given, the tag (latest by default), the digest', () => {
    expect(pinnedReference('busybox', DIGEST)).toBe(`busybox:latest@${DIGEST}`);
    expect(pinnedReference('library/busybox:1', DIGEST)).toBe(`busybox:1@${DIGEST}`);
    expect(pinnedReference('10.0.0.1:5000/app:t', DIGEST)).toBe(`10.0.0.1:5000/app:t@${DIGEST}`);
    expect(pinnedReference('docker.io/team/app:t', DIGEST)).toBe(`docker.io/team/app:t@${DIGEST}`);
    expect(hasDigest(`busybox:1@${DIGEST}`)).toBe(true);
    expect(hasDigest('busybox:1')).toBe(false);
  });

  it('matches a credential to its registry only (Docker Hub by any of its names)', () => {
    expect(sameRegistry('https://index.docker.io/v1/', 'registry-1.docker.io')).toBe(true);
    expect(sameRegistry('docker.io', 'registry-1.docker.io')).toBe(true);
    expect(sameRegistry('10.0.0.1:5000', '10.0.0.1:5000')).toBe(true);
    expect(sameRegistry('http://10.0.0.1:5000', '10.0.0.1:5000')).toBe(true);
    expect(sameRegistry('10.0.0.1:5000', '10.0.0.1:5001')).toBe(false);
    expect(sameRegistry('https://index.docker.io/v1/', '10.0.0.1:5000')).toBe(false);
  });
});
