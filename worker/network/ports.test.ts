// The published ports' pure parts: checks, conflicts, the nft element text, the state's parsing,
// and that the state functions keep the ports with their endpoint.
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../common/errors.js';
import { allocate, emptyState, parseSubnet, withoutPorts } from './ipam.js';
import { checkPorts, parsePorts, portElements, portName, portTaken, publishScript, type PublishedPort } from './ports.js';

const web: PublishedPort = { protocol: 'tcp', published: 8080, target: 80 };
const dns: PublishedPort = { protocol: 'udp', published: 53, target: 5353 };

describe('published ports', () => {
  it('accepts tcp, udp and sctp ports and names them as Docker does', () => {
    expect(checkPorts([web, dns, { protocol: 'sctp', published: 9, target: 9 }])).toEqual([web, dns, { protocol: 'sctp', published: 9, target: 9 }]);
    expect(portName(web)).toBe('8080/tcp');
    // The same number in two protocols is two ports.
    expect(checkPorts([web, { protocol: 'udp', published: 8080, target: 80 }])).toHaveLength(2);
  });

  it.each([
    [[{ ...web, published: 0 }], /^ports\[0\]\.published: must be a port, 1-65535, got 0$/],
    [[{ ...web, published: 65536 }], /^ports\[0\]\.published: must be a port, 1-65535, got 65536$/],
    [[{ ...web, target: 1.5 }], /^ports\[0\]\.target: must be a port, 1-65535, got 1.5$/],
    [[{ ...web, protocol: 'icmp' }], /^ports\[0\]\.protocol: must be tcp, udp or sctp, got "icmp"$/],
    [[web, { ...web, target: 81 }], /^ports\[1\]\.published: 8080\/tcp is published twice$/],
  ])('refuses %j, naming the field', (ports, message) => {
    expect(() => checkPorts(ports as PublishedPort[])).toThrow(InvalidArgumentError);
    expect(() => checkPorts(ports as PublishedPort[])).toThrow(message);
  });

  it('finds a port another endpoint publishes, and not the endpoint itself', () => {
    const endpoints = { a: { ports: [web] }, b: {}, c: { ports: [dns] } };
    expect(portTaken(endpoints, 'x', [{ protocol: 'udp', published: 8080, target: 1 }])).toBeUndefined();
    expect(portTaken(endpoints, 'x', [{ protocol: 'tcp', published: 9000, target: 1 }, { ...dns, target: 1 }])).toEqual({ port: { ...dns, target: 1 }, by: 'c' });
    expect(portTaken(endpoints, 'a', [web])).toBeUndefined();
  });

  it('writes map elements and one add or delete transaction per endpoint', () => {
    expect(portElements('172.31.0.2', [web, dns])).toBe('tcp . 8080 : 172.31.0.2 . 80, udp . 53 : 172.31.0.2 . 5353');
    expect(publishScript('tswarm-tsw0', 'add', '172.31.0.2', [web, dns])).toBe('add element ip tswarm-tsw0 published { tcp . 8080 : 172.31.0.2 . 80, udp . 53 : 172.31.0.2 . 5353 }\n');
    expect(publishScript('tswarm-tsw0', 'delete', '172.31.0.2', [web, dns])).toBe('delete element ip tswarm-tsw0 published { tcp . 8080, udp . 53 }\n');
    expect(publishScript('tswarm-tsw0', 'add', '172.31.0.2', [])).toBe('');
  });

  it('parses persisted ports, or says what is wrong', () => {
    expect(parsePorts([web])).toEqual([web]);
    expect(parsePorts({})).toBe('ports must be a list');
    expect(parsePorts([{ protocol: 'tcp', published: 8080 }])).toBe('ports: {"protocol":"tcp","published":8080} is not {protocol, published, target}');
  });

  it('keeps the ports with the endpoint in the state, and drops them on unpublish', () => {
    const st = emptyState('tsw0', parseSubnet('subnet', '10.1.0.0/24'));
    const a = allocate(st, 'a', 'tsva', '/n', [web]);
    expect(a.state.endpoints.a).toEqual({ address: '10.1.0.2', hostVeth: 'tsva', netns: '/n', ports: [web] });
    expect(allocate(a.state, 'b', 'tsvb', '/m').state.endpoints.b).toEqual({ address: '10.1.0.3', hostVeth: 'tsvb', netns: '/m' });
    expect(withoutPorts(a.state, 'a').endpoints.a).toEqual({ address: '10.1.0.2', hostVeth: 'tsva', netns: '/n' });
    expect(withoutPorts(a.state, 'zz')).toBe(a.state);
  });
});
