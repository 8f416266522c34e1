// A container's service table: the ruleset as text, and put in force in a real network namespace
// (nft accepts it, replaces it whole, and DNATs a VIP to its task); the withdrawn backends.
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandError, type CommandRunner } from './bridge.js';
import { LoadBalancer, meshMark, meshRoutes, parseMeshRules, ruleset, withdrawn, type LbState } from './service-lb.js';

const root = process.getuid?.() === 0;
const state: LbState = { dnsUdpPort: 40000, dnsTcpPort: 40001, vips: [{ vip: '10.0.0.9', backends: ['10.0.0.5', '10.0.0.6'] }, { vip: '10.0.0.2', backends: [] }] };

describe('service load balancer rules', () => {
  it('DNATs the embedded DNS to the proxy\'s ports, each VIP to its backends at random, and refuses VIPs without any', () => {
    const text = ruleset(state);
    expect(text).toContain('ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:40000');
    expect(text).toContain('ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:40001');
    expect(text).toContain('ip daddr 10.0.0.9 dnat to numgen random mod 2 map { 0 : 10.0.0.5, 1 : 10.0.0.6 }');
    expect(text).toContain('ip daddr { 10.0.0.2 } meta l4proto tcp reject with tcp reset');
    expect(text).not.toMatch(/snat|masquerade/);
    // Made, deleted and made again: one transaction that works whether the table exists or not.
    expect(text.split('\n').slice(0, 3)).toEqual(['table ip tswarm-svc {}', 'delete table ip tswarm-svc', 'table ip tswarm-svc {']);
    expect(ruleset({ ...state, vips: [] })).not.toContain('filter-output');
  });

  it('on the ingress network, marks each connection with the node it came through and routes its replies back there', () => {
    const nodes = [{ address: '10.255.0.3', mac: '02:42:0a:ff:00:03', mark: meshMark('10.255.0.3') }, { address: '10.255.0.2', mac: '02:42:0a:ff:00:02', mark: meshMark('10.255.0.2') }];
    expect(meshMark('10.255.0.2')).toBe(0x10002);
    const text = ruleset({ ...state, ingress: { ifname: 'eth1', nodes } });
    expect(text).toContain(`iifname "eth1" ct state new ct mark set ether saddr map { 02:42:0a:ff:00:02 : ${0x10002}, 02:42:0a:ff:00:03 : ${0x10003} }`);
    expect(text).toContain('type route hook output priority mangle; policy accept;');
    expect(text).toContain('ct mark != 0 meta mark set ct mark');
    // Rules added where missing, gone nodes' rules deleted, every table's route replaced.
    expect(parseMeshRules('[{"priority":0,"table":"local"},{"priority":1000,"fwmark":"0x10002","table":"65538"},{"priority":1000,"fwmark":"0x10009","table":"65545"}]')).toEqual([0x10002, 0x10009]);
    expect(meshRoutes({ ...state, ingress: { ifname: 'eth1', nodes } }, [0x10002, 0x10009]).split('\n').filter(Boolean)).toEqual([
      `rule del fwmark ${0x10009} table ${0x10009} priority 1000`,
      `rule add fwmark ${0x10003} table ${0x10003} priority 1000`,
      `route replace default via 10.255.0.3 dev eth1 table ${0x10003}`,
      `route replace default via 10.255.0.2 dev eth1 table ${0x10002}`,
    ]);
  });

  it('names the backends a change withdrew', () => {
    expect(withdrawn(undefined, state)).toEqual([]);
    expect(withdrawn(state, { ...state, vips: [{ vip: '10.0.0.9', backends: ['10.0.0.6', '10.0.0.7'] }] })).toEqual(['10.0.0.5']);
  });

  it('takes conntrack\'s "nothing deleted" for success, and passes any other failure on', async () => {
    const calls: string[][] = [];
    const runner = (fail: string): CommandRunner => (argv) => {
      calls.push([...argv]);
      return Promise.reject(new CommandError(argv, fail));
    };
    await new LoadBalancer(runner('conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.')).flush('/proc/1/ns/net', ['10.0.0.5'], 'udp');
    expect(calls[0]).toEqual(['nsenter', '--net=/proc/1/ns/net', '--', 'conntrack', '-D', '-p', 'udp', '--reply-src', '10.0.0.5']);
    await expect(new LoadBalancer(runner('Operation not permitted')).flush('/proc/1/ns/net', ['10.0.0.5'])).rejects.toThrow(/Operation not permitted/);
  });

  describe.skipIf(!root)('in a real namespace', () => {
    const ns = `tswlb${process.pid}`;
    afterAll(() => {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        // not made
      }
    });

    it('puts the table in force and replaces it whole', async () => {
      execFileSync('ip', ['netns', 'add', ns]);
      const lb = new LoadBalancer();
      await lb.apply(`/run/netns/${ns}`, state);
      await lb.apply(`/run/netns/${ns}`, { ...state, vips: [{ vip: '10.0.0.9', backends: ['10.0.0.7'] }] });
      const listed = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'], { encoding: 'utf8' });
      expect(listed).toContain('ip daddr 10.0.0.9 dnat to numgen random mod 1 map { 0 : 10.0.0.7 }');
      expect(listed).not.toContain('10.0.0.5');
      expect(listed.match(/table ip tswarm-svc/g)).toHaveLength(1);
      await lb.flush(`/run/netns/${ns}`, ['10.0.0.5']);
    });
  });
});
