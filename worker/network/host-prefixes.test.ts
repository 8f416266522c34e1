import { describe, expect, it } from 'vitest';
import { parseHostAddresses, parseHostPrefixes } from './host-prefixes.js';

const addrs = JSON.stringify([
  { ifname: 'lo', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8 }] },
  { ifname: 'eth0', addr_info: [{ family: 'inet', local: '192.0.2.2', prefixlen: 24 }, { family: 'inet6', local: 'fe80::1', prefixlen: 64 }] },
  { ifname: 'tsw0', addr_info: [{ family: 'inet', local: '172.31.0.1', prefixlen: 16 }] },
]);
const routes = JSON.stringify([{ dst: 'default', gateway: '192.0.2.1' }, { dst: '192.0.2.0/24' }, { dst: '10.9.0.0/16' }, { dst: '203.0.113.7' }]);

describe('host prefixes', () => {
  it('are the networks of the addresses and the routes, once each, without loopback and the default route', () => {
    expect(parseHostPrefixes(addrs, routes)).toEqual(['10.9.0.0/16', '172.31.0.0/16', '192.0.2.0/24', '203.0.113.7/32']);
  });

  it('tell whether an address is the host\'s', () => {
    expect(parseHostAddresses(addrs).includes('192.0.2.2')).toBe(true);
    expect(parseHostAddresses(addrs).includes('192.0.2.3')).toBe(false);
  });
});
