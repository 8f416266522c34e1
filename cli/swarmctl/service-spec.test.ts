// swarmctl's service flags → ServiceSpec, flag by flag: what each sets, Docker's defaults, and one
// error naming the flag for each bad value. The specs built here also pass the control API's
// validation, so the CLI never builds what the server refuses.
import { describe, expect, it } from 'vitest';
import type { ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { EndpointSpec_ResolutionMode, Mount_Type, PortConfig_Protocol, PortConfig_PublishMode, RestartPolicy_Condition, UpdateConfig_FailureAction, UpdateConfig_Order } from '../../proto/gen/tswarm/types.js';
import { validateServiceSpec } from '../../manager/controlapi/validate.js';
import { buildServiceSpec, FlagError, hostEntryFlags, referencedObjects, shellWords, sizeBytes, unresolvedRefs, updateServiceSpec, type Flags, type Refs } from './service-spec.js';

const refs: Refs = {
  secrets: new Map([['db-pass', { id: 'sec1', name: 'db-pass' }], ['sec2', { id: 'sec2', name: 'api-key' }]]),
  configs: new Map([['nginx.conf', { id: 'cfg1', name: 'nginx.conf' }]]),
  networks: new Map([['front', { id: 'net1', name: 'front' }]]),
};

const create = (f: Flags): ServiceSpec => buildServiceSpec({ name: 'web', image: 'busybox', ...f }, refs);

function flagError(fn: () => unknown): FlagError {
  try {
    fn();
  } catch (e) {
    if (e instanceof FlagError) return e;
    throw e;
  }
  throw new Error('no error');
}

describe('service create flags', () => {
  it('makes a minimal spec with Docker defaults: replicated, 1 replica, 10s grace, nothing else set', () => {
    const s = create({});
    expect(s.mode).toEqual({ $case: 'replicated', replicated: { replicas: 1 } });
    expect(s.task?.container).toMatchObject({ image: 'busybox', args: [], env: [], stopGracePeriodMs: 10_000, init: false, readOnly: false });
    expect(s.task?.resources).toBeUndefined();
    expect(s.task?.restart).toBeUndefined();
    expect(s.task?.placement).toBeUndefined();
    expect(s.update).toBeUndefined();
    expect(s.rollback).toBeUndefined();
    expect(s.endpoint).toBeUndefined();
    expect(() => validateServiceSpec(s)).not.toThrow();
  });

  it.each<[string, Flags, (s: ServiceSpec) => unknown, unknown]>([
    ['--mode global', { mode: 'global' }, (s) => s.mode, { $case: 'global', global: {} }],
    ['--mode global-job', { mode: 'global-job' }, (s) => s.mode, { $case: 'globalJob', globalJob: {} }],
    ['--mode replicated-job --replicas (completions; max-concurrent defaults to it)', { mode: 'replicated-job', replicas: '6' }, (s) => s.mode, { $case: 'replicatedJob', replicatedJob: { totalCompletions: 6, maxConcurrent: 6 } }],
    ['--max-concurrent', { mode: 'replicated-job', replicas: '6', 'max-concurrent': '2' }, (s) => s.mode, { $case: 'replicatedJob', replicatedJob: { totalCompletions: 6, maxConcurrent: 2 } }],
    ['--replicas', { replicas: '3' }, (s) => s.mode, { $case: 'replicated', replicated: { replicas: 3 } }],
    ['a repeated scalar flag takes the last value', { replicas: ['3', '4'] }, (s) => s.mode, { $case: 'replicated', replicated: { replicas: 4 } }],
    ['--env', { env: ['A=1', 'B'] }, (s) => s.task?.container?.env, ['A=1', 'B']],
    ['--label', { label: ['tier=web', 'x'] }, (s) => s.annotations?.labels, { tier: 'web', x: '' }],
    ['--container-label', { 'container-label': ['a=b'] }, (s) => s.task?.container?.labels, { a: 'b' }],
    ['--args', { args: ['sleep', '1d'] }, (s) => s.task?.container?.args, ['sleep', '1d']],
    ['args after --', { '--': ['httpd', '-f', 8080] }, (s) => s.task?.container?.args, ['httpd', '-f', '8080']],
    ['--constraint', { constraint: ['node.role==manager', 'node.labels.zone!=a'] }, (s) => s.task?.placement?.constraints, ['node.role==manager', 'node.labels.zone!=a']],
    ['--placement-pref', { 'placement-pref': ['spread=node.labels.zone'] }, (s) => s.task?.placement?.preferences, [{ spreadDescriptor: 'node.labels.zone' }]],
    ['--replicas-max-per-node', { 'replicas-max-per-node': '2' }, (s) => s.task?.placement?.maxReplicasPerNode, 2],
    ['--reserve-cpu, --reserve-memory', { 'reserve-cpu': '0.25', 'reserve-memory': '64M' }, (s) => s.task?.resources?.reservations, { nanoCpus: 250_000_000, memoryBytes: 64 << 20, pids: 0 }],
    ['--limit-cpu, --limit-memory, --limit-pids', { 'limit-cpu': '1.5', 'limit-memory': '1G', 'limit-pids': '100' }, (s) => s.task?.resources?.limits, { nanoCpus: 1_500_000_000, memoryBytes: 1 << 30, pids: 100 }],
    ['--restart-condition alone (Docker defaults for the rest)', { 'restart-condition': 'on-failure' }, (s) => s.task?.restart, { condition: RestartPolicy_Condition.CONDITION_ON_FAILURE, delayMs: 5000, maxAttempts: 0, windowMs: 0 }],
    ['--restart-* all', { 'restart-condition': 'none', 'restart-delay': '1s', 'restart-max-attempts': '3', 'restart-window': '2m' }, (s) => s.task?.restart, { condition: RestartPolicy_Condition.CONDITION_NONE, delayMs: 1000, maxAttempts: 3, windowMs: 120_000 }],
    ['a job restarts on failure by default', { mode: 'replicated-job', 'restart-delay': '1s' }, (s) => s.task?.restart?.condition, RestartPolicy_Condition.CONDITION_ON_FAILURE],
    ['--update-delay alone (Docker defaults: parallelism 1, monitor 5s, pause, stop-first)', { 'update-delay': '10s' }, (s) => s.update, {
      parallelism: 1, delayMs: 10_000, failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_PAUSE, monitorMs: 5000, maxFailureRatio: 0, order: UpdateConfig_Order.ORDER_STOP_FIRST,
    }],
    ['--update-* all', { 'update-parallelism': '0', 'update-failure-action': 'rollback', 'update-monitor': '30s', 'update-max-failure-ratio': '0.25', 'update-order': 'start-first' }, (s) => s.update, {
      parallelism: 0, delayMs: 0, failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_ROLLBACK, monitorMs: 30_000, maxFailureRatio: 0.25, order: UpdateConfig_Order.ORDER_START_FIRST,
    }],
    ['--rollback-* (update config untouched)', { 'rollback-parallelism': '2', 'rollback-failure-action': 'continue', 'rollback-order': 'start-first' }, (s) => [s.rollback, s.update], [{
      parallelism: 2, delayMs: 0, failureAction: UpdateConfig_FailureAction.FAILURE_ACTION_CONTINUE, monitorMs: 5000, maxFailureRatio: 0, order: UpdateConfig_Order.ORDER_START_FIRST,
    }, undefined]],
    ['--mount bind, readonly', { mount: ['type=bind,source=/srv/www,target=/usr/share/www,readonly'] }, (s) => s.task?.container?.mounts, [{ type: Mount_Type.TYPE_BIND, source: '/srv/www', target: '/usr/share/www', readOnly: true, tmpfsSizeBytes: 0, tmpfsMode: 0 }]],
    ['--mount volume is the default type; src/dst, ro=false', { mount: ['src=data,dst=/data,ro=false'] }, (s) => s.task?.container?.mounts, [{ type: Mount_Type.TYPE_VOLUME, source: 'data', target: '/data', readOnly: false, tmpfsSizeBytes: 0, tmpfsMode: 0 }]],
    ['--mount tmpfs with size and mode', { mount: ['type=tmpfs,target=/cache,tmpfs-size=64m,tmpfs-mode=1770'] }, (s) => s.task?.container?.mounts, [{ type: Mount_Type.TYPE_TMPFS, source: '', target: '/cache', readOnly: false, tmpfsSizeBytes: 64 << 20, tmpfsMode: 0o1770 }]],
    ['--secret NAME (in /run/secrets/NAME, 0444)', { secret: ['db-pass'] }, (s) => s.task?.container?.secrets, [{ secretId: 'sec1', secretName: 'db-pass', file: { name: 'db-pass', uid: 0, gid: 0, mode: 0o444 } }]],
    ['--secret by id gets its name as the default target', { secret: ['sec2'] }, (s) => s.task?.container?.secrets, [{ secretId: 'sec2', secretName: 'api-key', file: { name: 'api-key', uid: 0, gid: 0, mode: 0o444 } }]],
    ['--secret long form', { secret: ['source=db-pass,target=pw,mode=0400,uid=33,gid=33'] }, (s) => s.task?.container?.secrets?.[0]?.file, { name: 'pw', uid: 33, gid: 33, mode: 0o400 }],
    ['--config NAME (at /NAME, as Docker)', { config: ['nginx.conf'] }, (s) => s.task?.container?.configs, [{ configId: 'cfg1', configName: 'nginx.conf', file: { name: '/nginx.conf', uid: 0, gid: 0, mode: 0o444 } }]],
    ['--config with a target', { config: ['source=nginx.conf,target=/etc/nginx/nginx.conf'] }, (s) => s.task?.container?.configs?.[0]?.file?.name, '/etc/nginx/nginx.conf'],
    ['--publish host mode', { publish: ['published=8080,target=80,mode=host', 'published=53,target=53,protocol=udp,mode=host'] }, (s) => s.endpoint, {
      mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP,
      ports: [
        { name: '', protocol: PortConfig_Protocol.PROTOCOL_TCP, targetPort: 80, publishedPort: 8080, publishMode: PortConfig_PublishMode.PUBLISH_MODE_HOST },
        { name: '', protocol: PortConfig_Protocol.PROTOCOL_UDP, targetPort: 53, publishedPort: 53, publishMode: PortConfig_PublishMode.PUBLISH_MODE_HOST },
      ],
    }],
    ['--publish ingress (the default), long and short forms, a port of 0 left for the managers', { publish: ['published=8080,target=80', '9090:90/udp', '7000', 'target=81'], 'endpoint-mode': 'vip' }, (s) => s.endpoint?.ports.map((p) => [p.publishedPort, p.targetPort, p.protocol, p.publishMode]), [
      [8080, 80, PortConfig_Protocol.PROTOCOL_TCP, PortConfig_PublishMode.PUBLISH_MODE_INGRESS],
      [9090, 90, PortConfig_Protocol.PROTOCOL_UDP, PortConfig_PublishMode.PUBLISH_MODE_INGRESS],
      [0, 7000, PortConfig_Protocol.PROTOCOL_TCP, PortConfig_PublishMode.PUBLISH_MODE_INGRESS],
      [0, 81, PortConfig_Protocol.PROTOCOL_TCP, PortConfig_PublishMode.PUBLISH_MODE_INGRESS],
    ]],
    ['--endpoint-mode dnsrr', { 'endpoint-mode': 'dnsrr' }, (s) => s.endpoint?.mode, EndpointSpec_ResolutionMode.RESOLUTION_MODE_DNSRR],
    ['--hostname, --user, --workdir', { hostname: 'web1', user: 'www-data:www-data', workdir: '/srv' }, (s) => [s.task?.container?.hostname, s.task?.container?.user, s.task?.container?.dir], ['web1', 'www-data:www-data', '/srv']],
    ['--entrypoint (split as a shell would)', { entrypoint: `sh -c "echo 'hi there'" x\\ y` }, (s) => s.task?.container?.command, ['sh', '-c', "echo 'hi there'", 'x y']],
    ['--stop-grace-period, --stop-signal', { 'stop-grace-period': '1m30s', 'stop-signal': 'usr1' }, (s) => [s.task?.container?.stopGracePeriodMs, s.task?.container?.stopSignal], [90_000, 'SIGUSR1']],
    ['--init, --read-only', { init: true, 'read-only': true }, (s) => [s.task?.container?.init, s.task?.container?.readOnly], [true, true]],
    ['--cap-add, --cap-drop (normalized to CAP_)', { 'cap-add': ['net_admin', 'CAP_SYS_TIME'], 'cap-drop': ['ALL'] }, (s) => [s.task?.container?.capabilityAdd, s.task?.container?.capabilityDrop], [['CAP_NET_ADMIN', 'CAP_SYS_TIME'], ['ALL']]],
    ['--ulimit', { ulimit: ['nofile=1024:2048', 'nproc=512'] }, (s) => s.task?.container?.ulimits, [{ name: 'nofile', soft: 1024, hard: 2048 }, { name: 'nproc', soft: 512, hard: 512 }]],
    ['--group', { group: ['audio', '44'] }, (s) => s.task?.container?.groups, ['audio', '44']],
    ['--tty, --no-new-privileges, --oom-score-adj, --shm-size', { tty: true, 'no-new-privileges': true, 'oom-score-adj': '-500', 'shm-size': '128M' }, (s) => {
      const c = s.task?.container;
      return [c?.tty, c?.noNewPrivileges, c?.oomScoreAdj, c?.shmSizeBytes];
    }, [true, true, -500, 128 << 20]],
    ['--no-new-privileges as yargs hands it over', { 'new-privileges': false }, (s) => s.task?.container?.noNewPrivileges, true],
    ['--sysctl', { sysctl: ['net.ipv4.ip_forward=1', 'kernel.shmmax=65536'] }, (s) => s.task?.container?.sysctls, { 'net.ipv4.ip_forward': '1', 'kernel.shmmax': '65536' }],
    ['--dns, --dns-search, --dns-option', { dns: ['10.0.0.2', '10.0.0.3'], 'dns-search': ['example.org'], 'dns-option': ['ndots:2'] }, (s) => s.task?.container?.dnsConfig, {
      nameservers: ['10.0.0.2', '10.0.0.3'], search: ['example.org'], options: ['ndots:2'],
    }],
    ['--host (NAME:IP, kept as an /etc/hosts line)', { 'host-entry': ['db:10.0.0.5', 'v6:fd00::1'] }, (s) => s.task?.container?.hosts, ['10.0.0.5 db', 'fd00::1 v6']],
    ['--log-driver none', { 'log-driver': 'none' }, (s) => s.task?.logDriver, { name: 'none', options: {} }],
    ['--log-opt alone (for json-file)', { 'log-opt': ['max-size=1m', 'max-file=2'] }, (s) => s.task?.logDriver, { name: '', options: { 'max-size': '1m', 'max-file': '2' } }],
    ['--isolation default', { isolation: 'default' }, (s) => s.task?.container?.image, 'busybox'],
    ['--health-*', { 'health-cmd': 'wget -q localhost', 'health-interval': '5s', 'health-timeout': '2s', 'health-retries': '4', 'health-start-period': '10s', 'health-start-interval': '1s' }, (s) => s.task?.container?.healthcheck, {
      test: ['CMD-SHELL', 'wget -q localhost'], intervalMs: 5000, timeoutMs: 2000, retries: 4, startPeriodMs: 10_000, startIntervalMs: 1000,
    }],
    ['--no-healthcheck', { 'no-healthcheck': true }, (s) => s.task?.container?.healthcheck?.test, ['NONE']],
    ['--no-healthcheck as yargs hands it over', { healthcheck: false }, (s) => s.task?.container?.healthcheck?.test, ['NONE']],
  ])('%s', (_what, flags, pick, want) => {
    const s = create(flags);
    expect(pick(s)).toEqual(want);
    expect(() => validateServiceSpec(s)).not.toThrow();
  });

  it.each<[string, Flags, string, RegExp]>([
    ['an unknown mode', { mode: 'daemon' }, '--mode', /"daemon" must be one of replicated, global, replicated-job, global-job/],
    ['--replicas with global', { mode: 'global', replicas: '2' }, '--replicas', /runs one task per node/],
    ['--replicas negative', { replicas: '-2' }, '--replicas', /"-2" must be a whole number, 0 or more/],
    ['--replicas not a number', { replicas: 'three' }, '--replicas', /whole number/],
    ['--max-concurrent outside replicated-job', { 'max-concurrent': '2' }, '--max-concurrent', /replicated-job only/],
    ['--replicas-max-per-node with global', { mode: 'global', 'replicas-max-per-node': '1' }, '--replicas-max-per-node', /replicated services and jobs/],
    ['--reserve-cpu not a number', { 'reserve-cpu': 'half' }, '--reserve-cpu', /number of CPUs, e\.g\. 0\.5/],
    ['--limit-cpu negative', { 'limit-cpu': '-1' }, '--limit-cpu', /number of CPUs/],
    ['--limit-memory without a number', { 'limit-memory': 'lots' }, '--limit-memory', /size in bytes, e\.g\. 512k, 64M, 1G/],
    ['--reserve-memory with a bad unit', { 'reserve-memory': '64X' }, '--reserve-memory', /size in bytes/],
    ['--limit-pids negative', { 'limit-pids': '-1' }, '--limit-pids', /whole number/],
    ['--restart-condition', { 'restart-condition': 'always' }, '--restart-condition', /"always" must be one of none, on-failure, any/],
    ['--restart-delay', { 'restart-delay': '5 s' }, '--restart-delay', /is not a duration/],
    ['--restart-max-attempts', { 'restart-max-attempts': '1.5' }, '--restart-max-attempts', /whole number/],
    ['--restart-window', { 'restart-window': '1d' }, '--restart-window', /is not a duration/],
    ['--update-parallelism', { 'update-parallelism': 'all' }, '--update-parallelism', /whole number/],
    ['--update-delay', { 'update-delay': 'soon' }, '--update-delay', /is not a duration/],
    ['--update-failure-action', { 'update-failure-action': 'retry' }, '--update-failure-action', /pause, continue, rollback/],
    ['--update-monitor', { 'update-monitor': '-5s' }, '--update-monitor', /is not a duration/],
    ['--update-max-failure-ratio above 1', { 'update-max-failure-ratio': '1.5' }, '--update-max-failure-ratio', /from 0 to 1/],
    ['--update-order', { 'update-order': 'random' }, '--update-order', /stop-first, start-first/],
    ['--rollback-failure-action rollback', { 'rollback-failure-action': 'rollback' }, '--rollback-failure-action', /must be one of pause, continue$/],
    ['--rollback-max-failure-ratio', { 'rollback-max-failure-ratio': 'x' }, '--rollback-max-failure-ratio', /from 0 to 1/],
    ['update settings on a job', { mode: 'replicated-job', 'update-parallelism': '2' }, '--update-parallelism', /jobs run to completion/],
    ['--mount without target', { mount: ['type=volume,source=data'] }, '--mount', /needs target=PATH/],
    ['--mount relative target', { mount: ['type=tmpfs,target=cache'] }, '--mount', /must be an absolute path/],
    ['--mount unknown key', { mount: ['type=bind,source=/a,target=/b,propagation=shared'] }, '--mount', /unknown key "propagation"/],
    ['--mount unknown type', { mount: ['type=npipe,target=/b'] }, '--mount', /bind, volume, tmpfs/],
    ['--mount bind with a relative source', { mount: ['type=bind,source=data,target=/b'] }, '--mount', /source=\/ABSOLUTE\/HOST\/PATH/],
    ['--mount volume without source', { mount: ['target=/b'] }, '--mount', /anonymous volumes are not supported/],
    ['--mount tmpfs with a source', { mount: ['type=tmpfs,source=x,target=/b'] }, '--mount', /takes no source/],
    ['--mount tmpfs-size on a bind', { mount: ['type=bind,source=/a,target=/b,tmpfs-size=1m'] }, '--mount', /type=tmpfs only/],
    ['--mount bad tmpfs-size', { mount: ['type=tmpfs,target=/b,tmpfs-size=big'] }, '--mount tmpfs-size', /size in bytes/],
    ['--mount bad readonly', { mount: ['type=tmpfs,target=/b,readonly=maybe'] }, '--mount', /readonly=maybe must be true or false/],
    ['--mount twice at one target', { mount: ['type=tmpfs,target=/b', 'type=tmpfs,target=/b'] }, '--mount', /two mounts at "\/b"/],
    ['--secret without source', { secret: ['target=x'] }, '--secret', /needs source=NAME/],
    ['--secret bad mode', { secret: ['source=db-pass,mode=999'] }, '--secret mode', /octal/],
    ['--secret unknown key', { secret: ['source=db-pass,owner=me'] }, '--secret', /unknown key "owner"/],
    ['--secret twice at one target', { secret: ['db-pass', 'source=sec2,target=db-pass'] }, '--secret', /target "db-pass"/],
    ['--config bad uid', { config: ['source=nginx.conf,uid=root'] }, '--config uid', /whole number/],
    ['--publish short form that is not one', { publish: ['80:x'] }, '--publish', /must be \[PUBLISHED:\]TARGET\[\/PROTOCOL\]/],
    ['--publish host mode without a published port', { publish: ['target=80,mode=host'] }, '--publish', /needs published=PORT/],
    ['--publish bad target', { publish: ['published=8080,target=70000,mode=host'] }, '--publish', /target=70000 must be a port number \(1-65535\)/],
    ['--publish without target', { publish: ['published=8080,mode=host'] }, '--publish', /needs target=PORT/],
    ['--publish without published port', { publish: ['target=80,mode=host'] }, '--publish', /needs published=PORT/],
    ['--publish published port 0', { publish: ['published=0,target=80,mode=host'] }, '--publish', /published=0 must be a port number \(1-65535\)/],
    ['--publish bad protocol', { publish: ['published=80,target=80,protocol=icmp,mode=host'] }, '--publish protocol', /tcp, udp, sctp/],
    ['--publish one port twice', { publish: ['published=80,target=80,mode=host', 'published=80,target=81,mode=host'] }, '--publish', /port 80 is given twice/],
    ['--placement-pref other than spread', { 'placement-pref': ['binpack=node.labels.zone'] }, '--placement-pref', /spread=node\.labels\.NAME/],
    ['--network unknown key', { network: ['name=a,driver=overlay'] }, '--network', /unknown key "driver"/],
    ['--network twice', { network: ['backend', 'name=backend,alias=db'] }, '--network', /"backend" is attached already/],
    ['--sysctl of the whole host', { sysctl: ['kernel.pid_max=100000'] }, '--sysctl', /"kernel.pid_max" is not namespaced/],
    ['--sysctl without a value', { sysctl: ['net.ipv4.ip_forward'] }, '--sysctl', /must be KEY=VALUE/],
    ['--dns not an address', { dns: ['dns.example'] }, '--dns', /not an IP address/],
    ['--dns-search', { 'dns-search': ['bad domain'] }, '--dns-search', /not a domain name/],
    ['--dns-option', { 'dns-option': ['ndots 2'] }, '--dns-option', /not a resolver option/],
    ['--host without an address', { 'host-entry': ['db'] }, '--host', /must be NAME:IP/],
    ['--host with a bad address', { 'host-entry': ['db:10.0.0'] }, '--host', /must be NAME:IP/],
    ['--oom-score-adj out of range', { 'oom-score-adj': '2000' }, '--oom-score-adj', /from -1000 to 1000/],
    ['--shm-size', { 'shm-size': 'big' }, '--shm-size', /size in bytes/],
    ['--log-driver unknown', { 'log-driver': 'syslog' }, '--log-driver', /"syslog" is not a log driver tswarm has \(json-file, none\)/],
    ['--log-opt unbounded', { 'log-opt': ['max-size=-1'] }, '--log-opt', /max-size: "-1" must be a size/],
    ['--log-opt unknown', { 'log-opt': ['compress=true'] }, '--log-opt', /compress: is not an option of json-file/],
    ['--log-opt for none', { 'log-driver': 'none', 'log-opt': ['max-file=2'] }, '--log-opt', /max-file: the none driver takes no options/],
    ['--isolation hyperv', { isolation: 'hyperv' }, '--isolation', /process isolation only/],
    ['--user with spaces', { user: 'www data' }, '--user', /USER, UID, USER:GROUP or UID:GID/],
    ['--workdir relative', { workdir: 'srv' }, '--workdir', /absolute path/],
    ['--entrypoint unterminated quote', { entrypoint: 'sh -c "echo' }, '--entrypoint', /unterminated " quote/],
    ['--stop-grace-period', { 'stop-grace-period': '10' }, '--stop-grace-period', /is not a duration/],
    ['--stop-signal', { 'stop-signal': 'SIGNOPE' }, '--stop-signal', /is not a signal/],
    ['--cap-add', { 'cap-add': ['FLY'] }, '--cap-add', /"FLY" is not a Linux capability/],
    ['--ulimit name', { ulimit: ['files=10'] }, '--ulimit', /"files" is not a ulimit/],
    ['--ulimit soft above hard', { ulimit: ['nofile=10:5'] }, '--ulimit', /soft limit 10 is above the hard limit 5/],
    ['--ulimit syntax', { ulimit: ['nofile'] }, '--ulimit', /NAME=SOFT\[:HARD\]/],
    ['--env without key', { env: ['=1'] }, '--env', /KEY=VALUE/],
    ['--label without key', { label: ['=x'] }, '--label', /KEY=VALUE/],
    ['--health-interval without --health-cmd', { 'health-interval': '5s' }, '--health-interval', /needs --health-cmd/],
    ['--health-retries', { 'health-cmd': 'true', 'health-retries': 'x' }, '--health-retries', /whole number/],
    ['--no-healthcheck with --health-cmd', { 'no-healthcheck': true, 'health-cmd': 'true' }, '--no-healthcheck', /conflicts with --health-cmd/],
  ])('refuses %s, naming the flag', (_what, flags, flag, rule) => {
    const e = flagError(() => create(flags));
    expect(e.field).toBe(flag);
    expect(e.rule).toMatch(rule);
    expect(e.message).toBe(`${flag}: ${e.rule}`);
  });

  it('attaches networks in order, with aliases; the manager resolves their names', () => {
    const spec = buildServiceSpec({ name: 'web', image: 'busybox', network: ['front', 'name=back,alias=db,alias=store'] }, refs);
    expect(spec.task?.networks).toEqual([{ target: 'front', aliases: [] }, { target: 'back', aliases: ['db', 'store'] }]);
  });

  it('names the secrets and configs to look up; stand-ins let every flag be checked first', () => {
    const f: Flags = { name: 'web', image: 'busybox', secret: ['db-pass', 'source=sec2,target=k'], config: ['nginx.conf'] };
    expect(referencedObjects(f)).toEqual({ secrets: ['db-pass', 'sec2'], configs: ['nginx.conf'], networks: [] });
    expect(referencedObjects({ 'network-rm': ['front', 'back'] }).networks).toEqual(['front', 'back']);
    expect(buildServiceSpec(f, unresolvedRefs(f)).task?.container?.secrets.map((s) => s.secretName)).toEqual(['db-pass', 'sec2']);
    expect(flagError(() => referencedObjects({ secret: ['source=,target=x'] })).field).toBe('--secret');
  });
});

describe('service update flags', () => {
  const base = (): ServiceSpec =>
    create({
      replicas: '2', env: ['A=1', 'B=2'], label: ['tier=web'], 'container-label': ['c=1'], constraint: ['node.role==worker'], 'placement-pref': ['spread=node.labels.zone'],
      mount: ['type=tmpfs,target=/cache'], secret: ['db-pass'], config: ['nginx.conf'], publish: ['published=8080,target=80,mode=host'],
      'cap-add': ['NET_ADMIN'], ulimit: ['nofile=100:200'], group: ['audio'], 'health-cmd': 'true', 'limit-memory': '256M', 'update-delay': '1s', args: ['sleep', '1d'],
      sysctl: ['net.core.somaxconn=1024'], dns: ['10.0.0.2'], 'dns-search': ['a.example'], 'dns-option': ['ndots:2'], 'host-entry': ['db:10.0.0.5'], 'log-opt': ['max-size=1m'],
      network: ['net1'], // as the manager stores it: by id
    });
  const update = (f: Flags, spec = base()): ServiceSpec => updateServiceSpec(spec, f, refs, 'web');

  it('adds and removes networks, a removed one by its name or its id', () => {
    expect(update({ 'network-add': ['name=back,alias=db'] }).task?.networks).toEqual([{ target: 'net1', aliases: [] }, { target: 'back', aliases: ['db'] }]);
    expect(update({ 'network-rm': ['front'] }).task?.networks).toEqual([]);
    expect(update({ 'network-rm': ['net1'] }).task?.networks).toEqual([]);
  });

  it('changes nothing that no flag names', () => {
    const before = base();
    expect(update({}, before)).toEqual(before);
    const after = update({ 'limit-cpu': '2' }, before);
    expect(after.task?.resources).toEqual({ limits: { nanoCpus: 2e9, memoryBytes: 256 << 20, pids: 0 } });
    expect({ ...after, task: { ...after.task, resources: undefined } }).toEqual({ ...before, task: { ...before.task, resources: undefined } });
  });

  it.each<[string, Flags, (s: ServiceSpec) => unknown, unknown]>([
    ['--replicas', { replicas: '5' }, (s) => s.mode, { $case: 'replicated', replicated: { replicas: 5 } }],
    ['--image', { image: 'busybox:2' }, (s) => s.task?.container?.image, 'busybox:2'],
    ['--args replaces', { args: ['sleep', '5'] }, (s) => s.task?.container?.args, ['sleep', '5']],
    ['--force bumps forceUpdate', { force: true }, (s) => s.task?.forceUpdate, 1],
    ['--env-add replaces by key, --env-rm removes', { 'env-add': ['B=3', 'C=4'], 'env-rm': ['A'] }, (s) => s.task?.container?.env, ['B=3', 'C=4']],
    ['--label-add/rm', { 'label-add': ['x=y'], 'label-rm': ['tier'] }, (s) => s.annotations?.labels, { x: 'y' }],
    ['--container-label-add/rm', { 'container-label-add': ['d=2'], 'container-label-rm': ['c'] }, (s) => s.task?.container?.labels, { d: '2' }],
    ['--constraint-add/rm', { 'constraint-add': ['node.labels.ssd==true'], 'constraint-rm': ['node.role==worker'] }, (s) => s.task?.placement?.constraints, ['node.labels.ssd==true']],
    ['--placement-pref-add/rm', { 'placement-pref-add': ['spread=node.labels.rack'], 'placement-pref-rm': ['spread=node.labels.zone'] }, (s) => s.task?.placement?.preferences, [{ spreadDescriptor: 'node.labels.rack' }]],
    ['--mount-add replaces by target', { 'mount-add': ['type=tmpfs,target=/cache,tmpfs-size=1m', 'type=volume,source=d,target=/d'] }, (s) => s.task?.container?.mounts.map((m) => [m.target, m.tmpfsSizeBytes]), [['/cache', 1 << 20], ['/d', 0]]],
    ['--mount-rm by target', { 'mount-rm': ['/cache'] }, (s) => s.task?.container?.mounts, []],
    ['--secret-add/rm', { 'secret-rm': ['db-pass'], 'secret-add': ['sec2'] }, (s) => s.task?.container?.secrets.map((x) => x.secretName), ['api-key']],
    ['--config-add replaces by target, --config-rm', { 'config-add': ['source=nginx.conf,target=/etc/n.conf'], 'config-rm': ['nginx.conf'] }, (s) => s.task?.container?.configs.map((x) => x.file?.name), ['/etc/n.conf']],
    ['--publish-add/rm', { 'publish-rm': ['80'], 'publish-add': ['published=9090,target=90,mode=host'] }, (s) => s.endpoint?.ports.map((p) => [p.publishedPort, p.targetPort]), [[9090, 90]]],
    ['--cap-drop takes it off the added ones', { 'cap-drop': ['net_admin'] }, (s) => [s.task?.container?.capabilityAdd, s.task?.container?.capabilityDrop], [[], ['CAP_NET_ADMIN']]],
    ['--ulimit-add/rm', { 'ulimit-add': ['core=0'], 'ulimit-rm': ['nofile'] }, (s) => s.task?.container?.ulimits, [{ name: 'core', soft: 0, hard: 0 }]],
    ['--group-add/rm', { 'group-add': ['video'], 'group-rm': ['audio'] }, (s) => s.task?.container?.groups, ['video']],
    ['--sysctl-add/rm', { 'sysctl-add': ['net.ipv4.ip_forward=1'], 'sysctl-rm': ['net.core.somaxconn'] }, (s) => s.task?.container?.sysctls, { 'net.ipv4.ip_forward': '1' }],
    ['--dns-add/rm, --dns-search-add/rm, --dns-option-add/rm', { 'dns-add': ['10.0.0.3'], 'dns-rm': ['10.0.0.2'], 'dns-search-add': ['b.example'], 'dns-search-rm': ['a.example'], 'dns-option-rm': ['ndots:2'] }, (s) => s.task?.container?.dnsConfig, {
      nameservers: ['10.0.0.3'], search: ['b.example'], options: [],
    }],
    ['--host-add/rm (by NAME)', { 'host-add': ['cache:10.0.0.6'], 'host-rm': ['db'] }, (s) => s.task?.container?.hosts, ['10.0.0.6 cache']],
    ['--log-opt replaces the options', { 'log-opt': ['max-file=5'] }, (s) => s.task?.logDriver, { name: '', options: { 'max-file': '5' } }],
    ['--log-driver none drops the options', { 'log-driver': 'none' }, (s) => s.task?.logDriver, { name: 'none', options: {} }],
    ['--tty=false, --oom-score-adj', { tty: false, 'oom-score-adj': '100' }, (s) => [s.task?.container?.tty, s.task?.container?.oomScoreAdj], [false, 100]],
    ['--health-interval keeps the command', { 'health-interval': '3s' }, (s) => s.task?.container?.healthcheck, { test: ['CMD-SHELL', 'true'], intervalMs: 3000, timeoutMs: 0, retries: 0, startPeriodMs: 0, startIntervalMs: 0 }],
    ['--no-healthcheck', { 'no-healthcheck': true }, (s) => s.task?.container?.healthcheck?.test, ['NONE']],
    ['--init=false, --read-only', { init: false, 'read-only': true }, (s) => [s.task?.container?.init, s.task?.container?.readOnly], [false, true]],
    ['--limit-memory 0 clears the limit', { 'limit-memory': '0' }, (s) => s.task?.resources?.limits?.memoryBytes, 0],
    ['--update-parallelism keeps the other update settings', { 'update-parallelism': '3' }, (s) => [s.update?.parallelism, s.update?.delayMs], [3, 1000]],
    ['--rollback-monitor makes a rollback config from the defaults', { 'rollback-monitor': '1s' }, (s) => [s.rollback?.parallelism, s.rollback?.monitorMs], [1, 1000]],
    ['--restart-max-attempts makes a policy from the defaults', { 'restart-max-attempts': '2' }, (s) => s.task?.restart, { condition: RestartPolicy_Condition.CONDITION_ANY, delayMs: 5000, maxAttempts: 2, windowMs: 0 }],
    ['--stop-signal, --hostname, --user, --workdir, --entrypoint', { 'stop-signal': 'SIGINT', hostname: 'h', user: '1000', workdir: '/w', entrypoint: '/bin/sh -c' }, (s) => {
      const c = s.task?.container;
      return [c?.stopSignal, c?.hostname, c?.user, c?.dir, c?.command];
    }, ['SIGINT', 'h', '1000', '/w', ['/bin/sh', '-c']]],
    ['--max-concurrent on a replicated job', { 'max-concurrent': '1' }, (s) => s.mode, { $case: 'replicatedJob', replicatedJob: { totalCompletions: 4, maxConcurrent: 1 } }],
  ])('%s', (what, flags, pick, want) => {
    const spec = what.includes('replicated job') ? create({ mode: 'replicated-job', replicas: '4' }) : base();
    const s = update(flags, spec);
    expect(pick(s)).toEqual(want);
    expect(() => validateServiceSpec(s)).not.toThrow();
  });

  it.each<[string, Flags, string, RegExp]>([
    ['--env-rm of an absent variable', { 'env-rm': ['Z'] }, '--env-rm', /service web has no environment variable "Z"/],
    ['--label-rm of an absent label', { 'label-rm': ['nope'] }, '--label-rm', /has no label "nope"/],
    ['--container-label-rm', { 'container-label-rm': ['nope'] }, '--container-label-rm', /has no container label "nope"/],
    ['--constraint-rm', { 'constraint-rm': ['node.role==manager'] }, '--constraint-rm', /has no constraint/],
    ['--placement-pref-rm', { 'placement-pref-rm': ['spread=node.labels.rack'] }, '--placement-pref-rm', /has no placement preference/],
    ['--mount-rm', { 'mount-rm': ['/nope'] }, '--mount-rm', /has no mount at "\/nope"/],
    ['--secret-rm', { 'secret-rm': ['nope'] }, '--secret-rm', /has no secret "nope"/],
    ['--config-rm', { 'config-rm': ['nope'] }, '--config-rm', /has no config "nope"/],
    ['--publish-rm of an unpublished port', { 'publish-rm': ['81'] }, '--publish-rm', /publishes no port with target 81/],
    ['--publish-rm syntax', { 'publish-rm': ['published=80'] }, '--publish-rm', /TARGET-PORT/],
    ['--network-rm', { 'network-rm': ['nope'] }, '--network-rm', /not attached to network "nope"/],
    ['--network-add of an attached network', { 'network-add': ['net1'] }, '--network-add', /"net1" is attached already/],
    ['--sysctl-rm', { 'sysctl-rm': ['net.nope'] }, '--sysctl-rm', /sets no kernel parameter "net.nope"/],
    ['--dns-rm', { 'dns-rm': ['10.9.9.9'] }, '--dns-rm', /has no nameserver "10.9.9.9"/],
    ['--host-rm', { 'host-rm': ['db:10.0.0.6'] }, '--host-rm', /has no \/etc\/hosts entry "db:10.0.0.6"/],
    ['--ulimit-rm', { 'ulimit-rm': ['core'] }, '--ulimit-rm', /sets no ulimit "core"/],
    ['--group-rm', { 'group-rm': ['video'] }, '--group-rm', /has no group "video"/],
    ['--image empty', { image: '' }, '--image', /must not be empty/],
    ['--max-concurrent on a replicated service', { 'max-concurrent': '1' }, '--max-concurrent', /is for replicated jobs; service web is replicated/],
    ['--replicas bad', { replicas: '1e3' }, '--replicas', /whole number/],
    ['--mount-add bad', { 'mount-add': ['type=tmpfs'] }, '--mount-add', /needs target=PATH/],
    ['--publish-add out of range', { 'publish-add': ['70000:80'] }, '--publish-add', /ports are 1-65535/],
    ['--limit-memory bad', { 'limit-memory': '1X' }, '--limit-memory', /size in bytes/],
    ['arguments after --', { '--': ['sleep', '5'] }, '--', /as --args/],
  ])('refuses %s, naming the flag', (_what, flags, flag, rule) => {
    const e = flagError(() => update(flags));
    expect(e.field).toBe(flag);
    expect(e.rule).toMatch(rule);
  });

  it('refuses a replica count and health settings where the service has none', () => {
    const global = create({ mode: 'global' });
    expect(flagError(() => update({ replicas: '3' }, global)).rule).toMatch(/service web is global; only replicated services and jobs take a replica count/);
    expect(flagError(() => update({ 'health-retries': '3' }, create({}))).rule).toMatch(/needs --health-cmd \(the service has no healthcheck command\)/);
    expect(flagError(() => update({ 'update-delay': '1s' }, create({ mode: 'global-job' }))).rule).toMatch(/jobs run to completion/);
  });
});

describe('value syntax', () => {
  it.each<[string, number]>([['512', 512], ['512k', 512 << 10], ['64M', 64 << 20], ['64MiB', 64 << 20], ['64mb', 64 << 20], ['1.5g', 1.5 * (1 << 30)], ['2T', 2 * 1024 ** 4]])('size %s', (text, bytes) => {
    expect(sizeBytes(text, '--x')).toBe(bytes);
  });

  it.each<[string, string[]]>([['a b  c', ['a', 'b', 'c']], [`'a b' "c\\"d"`, ['a b', 'c"d']], ['a""b', ['ab']], ['""', ['']], ['', []]])('words of %j', (text, words) => {
    expect(shellWords(text, '--x')).toEqual(words);
  });
});

describe('--host after service create|update', () => {
  it('is an /etc/hosts entry there, and the manager to reach before the command', () => {
    expect(hostEntryFlags(['--host', '10.0.0.1:4242', 'service', 'create', '--name', 'w', '--host', 'db:10.0.0.5', '--host=c:10.0.0.6', '--', 'sh', '--host'])).toEqual([
      '--host', '10.0.0.1:4242', 'service', 'create', '--name', 'w', '--host-entry', 'db:10.0.0.5', '--host-entry=c:10.0.0.6', '--', 'sh', '--host',
    ]);
    expect(hostEntryFlags(['service', 'ls', '--host', 'x'])).toEqual(['service', 'ls', '--host', 'x']);
  });
});
