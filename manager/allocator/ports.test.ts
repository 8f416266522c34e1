// Published ports across the cluster: ingress ports unique, host ports only apart from them, 0
// given one from 30000-32767 (the same again when it is still free).
import { describe, expect, it } from 'vitest';
import { Service } from '../../proto/gen/tswarm/objects.js';
import { PortConfig_Protocol, PortConfig_PublishMode, type PortConfig } from '../../proto/gen/tswarm/types.js';
import { InvalidArgumentError } from '../../common/errors.js';
import { allocatePorts, INGRESS_PORTS } from './ports.js';

const P = (published: number, target: number, mode: 'ingress' | 'host' = 'ingress', protocol = PortConfig_Protocol.PROTOCOL_TCP): PortConfig => ({
  name: '',
  protocol,
  targetPort: target,
  publishedPort: published,
  publishMode: mode === 'ingress' ? PortConfig_PublishMode.PUBLISH_MODE_INGRESS : PortConfig_PublishMode.PUBLISH_MODE_HOST,
});
const svc = (id: string, ports: PortConfig[]): Service => Service.fromPartial({ id, spec: { annotations: { name: id, labels: {} } }, endpoint: { ports, virtualIps: [] } });

describe('allocatePorts', () => {
  it('numbers ingress ports of 0 from 30000, past those taken, and keeps a port across updates', () => {
    const others = [svc('a', [P(30000, 80)]), svc('b', [P(30001, 80, 'ingress', PortConfig_Protocol.PROTOCOL_UDP)])];
    const got = allocatePorts('me', [P(0, 80), P(0, 53, 'ingress', PortConfig_Protocol.PROTOCOL_UDP), P(8080, 81)], [], others);
    expect(got.map((p) => p.publishedPort)).toEqual([30001, 30000, 8080]);
    // Updated: the same target keeps its port; a new one gets the next free.
    expect(allocatePorts('me', [P(0, 80), P(0, 90)], got, others).map((p) => p.publishedPort)).toEqual([30001, 30002]);
  });

  it('refuses a port another service holds in a way that collides, naming it; host ports may share', () => {
    const others = [svc('web', [P(8080, 80)]), svc('edge', [P(9090, 80, 'host')])];
    expect(() => allocatePorts('me', [P(8080, 81)], [], others)).toThrow(new InvalidArgumentError('spec.endpoint.ports[0].publishedPort', 'port 8080/tcp is already published by service web (ingress mode: on every node)'));
    expect(() => allocatePorts('me', [P(8080, 81, 'host')], [], others)).toThrow(/already published by service web/);
    expect(() => allocatePorts('me', [P(9090, 81)], [], others)).toThrow(/port 9090\/tcp is already published by service edge$/);
    expect(allocatePorts('me', [P(9090, 81, 'host')], [], others)).toEqual([P(9090, 81, 'host')]);
    expect(allocatePorts('me', [P(8080, 81, 'ingress', PortConfig_Protocol.PROTOCOL_UDP)], [], others)).toHaveLength(1);
    // Its own ports are not a conflict.
    expect(allocatePorts('web', [P(8080, 80)], [], others)).toEqual([P(8080, 80)]);
  });

  it('says when the range is full', () => {
    const all = Array.from({ length: INGRESS_PORTS.last - INGRESS_PORTS.first + 1 }, (_, i) => P(INGRESS_PORTS.first + i, 80));
    expect(() => allocatePorts('me', [P(0, 80)], [], [svc('hog', all)])).toThrow(/no free port in 30000-32767 for tcp/);
  });
});
