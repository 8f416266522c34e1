import { describe, expect, it } from 'vitest';
import { parseImageRef } from './reference.js';

const D = 'https://registry-1.docker.io';

describe('parseImageRef', () => {
  it('reads the registry, the repository and the tag or digest as Docker does', () => {
    expect(parseImageRef('busybox', D)).toEqual({ registry: D, repository: 'library/busybox', reference: 'latest' });
    expect(parseImageRef('library/busybox:1.36', D)).toEqual({ registry: D, repository: 'library/busybox', reference: '1.36' });
    expect(parseImageRef('10.77.0.11:5000/library/busybox:latest', D)).toEqual({ registry: 'http://10.77.0.11:5000', repository: 'library/busybox', reference: 'latest' });
    expect(parseImageRef('localhost:5000/app', D)).toEqual({ registry: 'http://localhost:5000', repository: 'library/app', reference: 'latest' });
    expect(parseImageRef('reg.example/team/app@sha256:' + 'a'.repeat(64), D)).toEqual({ registry: 'https://reg.example', repository: 'team/app', reference: 'sha256:' + 'a'.repeat(64) });
  });

  it('names the field and the rule when the reference is bad', () => {
    expect(() => parseImageRef('', D)).toThrow(/^spec\.task\.container\.image: "" is not an image reference/);
    expect(() => parseImageRef('Busy Box', D)).toThrow(/is not an image reference/);
    expect(() => parseImageRef('busybox@sha256:xyz', D)).toThrow(/the digest must be sha256/);
    expect(() => parseImageRef('UPPER/case', D)).toThrow(/is not a repository name/);
    expect(() => parseImageRef('busybox', '')).toThrow(/"busybox" names no registry, and this node has no default registry \(swarmd --default-registry URL\)/);
    expect(parseImageRef('10.0.0.1:5000/x', '').registry).toBe('http://10.0.0.1:5000');
  });
});
