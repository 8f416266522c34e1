import { describe, expect, it } from 'vitest';
import { parseEtcdUrl } from './etcd-backend.js';

describe('parseEtcdUrl', () => {
  it('reads endpoints and an optional prefix', () => {
    expect(parseEtcdUrl('etcd://127.0.0.1:2379')).toEqual({ endpoints: ['http://127.0.0.1:2379'], prefix: '/tswarm' });
    expect(parseEtcdUrl('etcd://a:1,b:2/x/y/')).toEqual({ endpoints: ['http://a:1', 'http://b:2'], prefix: '/x/y' });
  });

  it('names the flag and the rule when the URL is wrong', () => {
    expect(() => parseEtcdUrl('http://a:1')).toThrow(/^--store: "http:\/\/a:1" must be etcd:\/\//);
    expect(() => parseEtcdUrl('etcd://a,b:2')).toThrow(/^--store: "a" must be HOST:PORT/);
  });
});
