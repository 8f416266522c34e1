// Every field of a TaskSpec (ContainerSpec included), and where its effect is tested: from inside
// a running container on a lab host (a probe that test/options-lab.test.ts runs), by a named test
// elsewhere (what the scheduler or the orchestrator does with it), or refused by the control API.
// test/options/guard.test.ts enumerates the fields of the .proto files and fails when a field has
// no entry here, so that no option can again be accepted and silently dropped.
import type { ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { EndpointSpec_ResolutionMode, PortConfig_Protocol, PortConfig_PublishMode } from '../../proto/gen/tswarm/types.js';

/** The services the probes run in: each is one container with the flags of its group. */
export type ProbeService = 'root' | 'user' | 'init';

/** A shell snippet run in a service's container; its output must match `expect`. */
export interface Probe {
  service: ProbeService;
  /** Run by the container's own /bin/sh, stderr with stdout (busybox: applets as `busybox NAME`). */
  sh: string;
  expect: RegExp;
}

export type Coverage =
  | { inside: Probe }
  /** A test elsewhere shows the effect: `file` holds a test named exactly `name`. */
  | { test: { file: string; name: string } }
  /** The control API refuses it: `set` gives the field a value in a valid spec. */
  | { refused: (s: ServiceSpec) => void };

const BB = 'busybox';
const LAB = 'test/options-lab.test.ts';
const DISCOVERY_LAB = 'test/discovery-lab.test.ts';
const ORCH_LAB = 'test/orchestration-lab.test.ts';
const SCHED = 'manager/scheduler/scheduler.test.ts';
const RECONCILE = 'manager/orchestrator/reconcile.test.ts';

/** The flags of each probe service (test/options-lab.test.ts adds --name, --image and the command). */
export const PROBE_FLAGS: Record<ProbeService, (ctx: { bindDir: string }) => string[]> = {
  root: ({ bindDir }) => [
    '--entrypoint', 'sh -c',
    '--hostname', 'probe-root',
    '--env', 'PROBE_ENV=from-the-spec',
    '--workdir', '/tmp',
    '--group', '4242', '--group', '44', // 44: the secret's group, readable without CAP_DAC_OVERRIDE
    '--read-only',
    '--cap-drop', 'ALL', '--cap-add', 'NET_BIND_SERVICE', '--cap-add', 'CHOWN',
    '--ulimit', 'nofile=1234:2345',
    '--no-new-privileges',
    '--oom-score-adj', '333',
    '--shm-size', '32M',
    '--sysctl', 'net.ipv4.ip_unprivileged_port_start=42', '--sysctl', 'kernel.shmmni=2048',
    '--dns', '10.9.9.9', '--dns-search', 'probe.example', '--dns-option', 'ndots:3',
    '--host', 'db:10.1.2.3',
    '--mount', `type=bind,source=${bindDir},target=/bind,readonly`,
    '--mount', 'type=tmpfs,target=/scratch,tmpfs-size=1m,tmpfs-mode=1770',
    '--mount', 'type=volume,source=probevol,target=/vol',
    '--secret', 'source=probe-pw,target=pw,mode=0440,uid=33,gid=44',
    '--config', 'source=probe-conf,target=/etc/probe.conf,mode=0404,uid=55,gid=66',
    '--limit-memory', '48M', '--limit-cpu', '0.5', '--limit-pids', '77',
  ],
  user: () => ['--user', '65534', '--group', '4242', '--cap-drop', 'ALL', '--cap-add', 'NET_BIND_SERVICE'],
  init: () => ['--init'],
};

const cap = (set: 'Bnd' | 'Eff' | 'Prm', service: ProbeService, hex: string): Coverage => ({
  inside: { service, sh: `${BB} grep Cap${set} /proc/self/status`, expect: new RegExp(`^Cap${set}:\\s+${hex}$`, 'm') },
});

/** NET_BIND_SERVICE (10) and CHOWN (0): bits 10 and 0. */
const ROOT_CAPS = '0000000000000401';

export const FIELDS: Record<string, Coverage> = {
  'container.image': { test: { file: ORCH_LAB, name: 'converges a replicated service on real containers on both workers' } },
  'container.labels': { test: { file: LAB, name: "puts the service's container labels and Docker's swarm labels on the container" } },
  'container.command': { inside: { service: 'root', sh: `${BB} tr '\\0' ' ' < /proc/1/cmdline`, expect: /^sh -c / } },
  'container.args': { inside: { service: 'root', sh: `${BB} tr '\\0' ' ' < /proc/1/cmdline`, expect: /^sh -c .*@@container\.args/ } },
  'container.hostname': { inside: { service: 'root', sh: 'hostname; cat /etc/hostname', expect: /^probe-root\nprobe-root$/ } },
  'container.env': { inside: { service: 'root', sh: 'echo "$PROBE_ENV"', expect: /^from-the-spec$/ } },
  'container.dir': { inside: { service: 'root', sh: 'pwd', expect: /^\/tmp$/ } },
  'container.user': { inside: { service: 'user', sh: 'id -u; id -g', expect: /^65534\n65534$/ } },
  'container.groups': { inside: { service: 'user', sh: 'id -G', expect: /^65534 4242$/ } },
  'container.mounts.type': { inside: { service: 'root', sh: `${BB} awk '$5 ~ /^\\/(bind|scratch|vol)$/ { for (i = 7; $i != "-"; i++); print $5, $(i+1) }' /proc/self/mountinfo | ${BB} sort`, expect: /^\/bind \S+\n\/scratch tmpfs\n\/vol \S+$/ } },
  'container.mounts.source': { inside: { service: 'root', sh: 'cat /bind/file; echo written > /vol/from-the-container && echo volume-written', expect: /^from-the-host\nvolume-written$/ } },
  'container.mounts.target': { inside: { service: 'root', sh: `${BB} awk '{ print $5 }' /proc/self/mountinfo | ${BB} grep -E '^/(bind|scratch|vol)$' | ${BB} sort`, expect: /^\/bind\n\/scratch\n\/vol$/ } },
  'container.mounts.readOnly': { inside: { service: 'root', sh: 'echo x > /bind/new || true', expect: /Read-only file system/ } },
  'container.mounts.tmpfsSizeBytes': { inside: { service: 'root', sh: `${BB} df -k /scratch | ${BB} awk 'NR == 2 { print $2 }'`, expect: /^1024$/ } },
  'container.mounts.tmpfsMode': { inside: { service: 'root', sh: `${BB} stat -c %a /scratch`, expect: /^1770$/ } },
  'container.stopGracePeriodMs': { test: { file: LAB, name: 'stops with the stop signal through the init, then SIGKILL once the grace period is over' } },
  'container.stopSignal': { test: { file: LAB, name: 'stops with the stop signal through the init, then SIGKILL once the grace period is over' } },
  'container.healthcheck.test': { test: { file: ORCH_LAB, name: 'fails a task whose healthcheck fails, and keeps a healthy one' } },
  'container.healthcheck.intervalMs': { test: { file: ORCH_LAB, name: 'fails a task whose healthcheck fails, and keeps a healthy one' } },
  'container.healthcheck.retries': { test: { file: ORCH_LAB, name: 'fails a task whose healthcheck fails, and keeps a healthy one' } },
  'container.healthcheck.timeoutMs': { test: { file: LAB, name: 'fails a healthcheck that outlasts its timeout' } },
  'container.healthcheck.startPeriodMs': { test: { file: LAB, name: 'checks every start interval during the start period, and counts no failure there' } },
  'container.healthcheck.startIntervalMs': { test: { file: LAB, name: 'checks every start interval during the start period, and counts no failure there' } },
  'container.secrets.secretId': { inside: { service: 'root', sh: 'cat /run/secrets/pw', expect: /^hunter2$/ } },
  'container.secrets.secretName': { inside: { service: 'root', sh: 'cat /run/secrets/pw', expect: /^hunter2$/ } },
  'container.secrets.file.name': { inside: { service: 'root', sh: 'ls /run/secrets', expect: /^pw$/ } },
  'container.secrets.file.uid': { inside: { service: 'root', sh: `${BB} stat -c %u /run/secrets/pw`, expect: /^33$/ } },
  'container.secrets.file.gid': { inside: { service: 'root', sh: `${BB} stat -c %g /run/secrets/pw`, expect: /^44$/ } },
  'container.secrets.file.mode': { inside: { service: 'root', sh: `${BB} stat -c %a /run/secrets/pw`, expect: /^440$/ } },
  'container.configs.configId': { inside: { service: 'root', sh: 'cat /etc/probe.conf', expect: /^probe = 1$/ } },
  'container.configs.configName': { inside: { service: 'root', sh: 'cat /etc/probe.conf', expect: /^probe = 1$/ } },
  'container.configs.file.name': { inside: { service: 'root', sh: 'ls /etc/probe.conf', expect: /^\/etc\/probe\.conf$/ } },
  'container.configs.file.uid': { inside: { service: 'root', sh: `${BB} stat -c %u /etc/probe.conf`, expect: /^55$/ } },
  'container.configs.file.gid': { inside: { service: 'root', sh: `${BB} stat -c %g /etc/probe.conf`, expect: /^66$/ } },
  'container.configs.file.mode': { inside: { service: 'root', sh: `${BB} stat -c %a /etc/probe.conf`, expect: /^404$/ } },
  // Docker's arithmetic: ALL dropped, then NET_BIND_SERVICE and CHOWN; the same three sets for
  // root; a non-root user keeps the bounding set but execs with nothing effective or permitted.
  'container.capabilityAdd': cap('Bnd', 'root', ROOT_CAPS),
  'container.capabilityDrop': cap('Eff', 'root', ROOT_CAPS),
  'container.ulimits.name': { inside: { service: 'root', sh: 'ulimit -n', expect: /^1234$/ } },
  'container.ulimits.soft': { inside: { service: 'root', sh: 'ulimit -S -n', expect: /^1234$/ } },
  'container.ulimits.hard': { inside: { service: 'root', sh: 'ulimit -H -n', expect: /^2345$/ } },
  'container.readOnly': { inside: { service: 'root', sh: 'echo x > /probe-write || true; echo x > /scratch/ok && echo mounts-writable', expect: /Read-only file system\nmounts-writable$/ } },
  'container.tty': { test: { file: LAB, name: 'gives a --tty container a terminal as its standard input and output' } },
  'container.init': { test: { file: LAB, name: 'runs the init as PID 1: it forwards signals, reaps zombies and exits with the status of its child' } },
  'container.oomScoreAdj': { inside: { service: 'root', sh: 'cat /proc/self/oom_score_adj', expect: /^333$/ } },
  'container.sysctls': { inside: { service: 'root', sh: 'cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni', expect: /^42\n2048$/ } },
  'container.noNewPrivileges': { inside: { service: 'root', sh: `${BB} grep NoNewPrivs /proc/self/status`, expect: /^NoNewPrivs:\s+1$/ } },
  'container.shmSizeBytes': { inside: { service: 'root', sh: `${BB} df -k /dev/shm | ${BB} awk 'NR == 2 { print $2 }'`, expect: /^32768$/ } },
  'container.dnsConfig.nameservers': { inside: { service: 'root', sh: `${BB} grep ^nameserver /etc/resolv.conf`, expect: /^nameserver 10\.9\.9\.9$/ } },
  'container.dnsConfig.search': { inside: { service: 'root', sh: `${BB} grep ^search /etc/resolv.conf`, expect: /^search probe\.example$/ } },
  'container.dnsConfig.options': { inside: { service: 'root', sh: `${BB} grep ^options /etc/resolv.conf`, expect: /^options ndots:3$/ } },
  'container.hosts': { inside: { service: 'root', sh: `${BB} grep -E 'db|probe-root' /etc/hosts`, expect: /^10\.1\.2\.3\tdb\n\d+\.\d+\.\d+\.\d+\tprobe-root$/ } },
  'resources.limits.nanoCpus': { inside: { service: 'root', sh: 'cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us', expect: /^(50000 100000|50000)$/ } },
  'resources.limits.memoryBytes': { inside: { service: 'root', sh: 'cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes', expect: /^50331648$/ } },
  'resources.limits.pids': { inside: { service: 'root', sh: 'cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max', expect: /^77$/ } },
  'resources.reservations.nanoCpus': { test: { file: SCHED, name: 'subtracts the reservations of the tasks already on a node' } },
  'resources.reservations.memoryBytes': { test: { file: SCHED, name: 'subtracts the reservations of the tasks already on a node' } },
  'resources.reservations.pids': {
    refused: (s) => {
      s.task!.resources = { reservations: { nanoCpus: 0, memoryBytes: 0, pids: 10 } };
    },
  },
  'restart.condition': { test: { file: RECONCILE, name: 'condition on-failure restarts FAILED but not COMPLETE; condition none restarts nothing' } },
  'restart.delayMs': { test: { file: RECONCILE, name: 'waits out the delay: "retry at" the end of it, then replaces' } },
  'restart.maxAttempts': { test: { file: RECONCILE, name: 'gives up after max_attempts restarts in the slot, and starts afresh after a spec change' } },
  'restart.windowMs': { test: { file: RECONCILE, name: 'counts only the restarts within window_ms' } },
  'placement.constraints': { test: { file: SCHED, name: 'applies placement constraints' } },
  'placement.preferences.spreadDescriptor': { test: { file: SCHED, name: 'balances over the values of a spread preference first' } },
  'placement.platforms.os': { test: { file: SCHED, name: 'matches the platforms of the placement' } },
  'placement.platforms.architecture': { test: { file: SCHED, name: 'matches the platforms of the placement' } },
  'placement.maxReplicasPerNode': { test: { file: SCHED, name: 'limits replicas per node, counting the tasks of the same service only' } },
  'networks.target': { test: { file: 'test/overlay-lab.test.ts', name: 'connects tasks on two hosts by address (ICMP and TCP), at the underlay MTU less 50, with a way out; keeps the network while in use' } },
  'networks.aliases': { test: { file: DISCOVERY_LAB, name: "answers service names, tasks.NAME, aliases, dnsrr names and outside names, scoped to the asker's networks" } },
  'forceUpdate': { test: { file: LAB, name: 'rolls the tasks out again on --force, with nothing else changed' } },
  'logDriver.name': { test: { file: LAB, name: 'keeps no log for a --log-driver none service' } },
  'logDriver.options': { test: { file: 'test/logs-rotation-lab.test.ts', name: 'keeps a container writing 100 MB within max-size=1m x max-file=3, and --tail shows its last lines' } },
};

const CONTROL = 'manager/controlapi/control.test.ts';
const ORCH = 'manager/orchestrator/orchestrator.test.ts';

/** The fields of ServiceSpec outside its TaskSpec (above), with the same rule. */
export const SERVICE_FIELDS: Record<string, Coverage> = {
  'annotations.name': { test: { file: CONTROL, name: 'creates a service and finds it by id, name and id prefix' } },
  'annotations.labels': { test: { file: CONTROL, name: 'creates a service and finds it by id, name and id prefix' } },
  'replicated.replicas': { test: { file: RECONCILE, name: 'creates one task per slot, as the contract with the allocator and scheduler says' } },
  'global': { test: { file: RECONCILE, name: 'one task per ready, active node that matches the constraints' } },
  'replicatedJob.maxConcurrent': { test: { file: ORCH, name: 'runs a replicated job to its total completions, at most max_concurrent at a time' } },
  'replicatedJob.totalCompletions': { test: { file: ORCH, name: 'runs a replicated job to its total completions, at most max_concurrent at a time' } },
  'globalJob': { test: { file: RECONCILE, name: 'global job: once per eligible node, joining nodes included; completed nodes do not run again' } },
  'update.parallelism': { test: { file: RECONCILE, name: 'start-first: the new task runs before the old one is shut down; parallelism 0 does all at once' } },
  'update.delayMs': { test: { file: RECONCILE, name: 'waits for the monitor period and the delay between batches' } },
  'update.failureAction': { test: { file: RECONCILE, name: 'failure action rollback: swaps to the previous spec and rolls back with the rollback config' } },
  'update.monitorMs': { test: { file: RECONCILE, name: 'waits for the monitor period and the delay between batches' } },
  'update.maxFailureRatio': { test: { file: RECONCILE, name: 'pauses on failures beyond the ratio, and resumes on a new spec version' } },
  'update.order': { test: { file: RECONCILE, name: 'start-first: the new task runs before the old one is shut down; parallelism 0 does all at once' } },
  'rollback.parallelism': { test: { file: RECONCILE, name: 'failure action rollback: swaps to the previous spec and rolls back with the rollback config' } },
  'rollback.delayMs': { test: { file: RECONCILE, name: 'failure action rollback: swaps to the previous spec and rolls back with the rollback config' } },
  'rollback.failureAction': { test: { file: RECONCILE, name: 'failure action rollback: swaps to the previous spec and rolls back with the rollback config' } },
  'rollback.monitorMs': { test: { file: RECONCILE, name: 'failure action rollback: swaps to the previous spec and rolls back with the rollback config' } },
  'rollback.maxFailureRatio': { test: { file: RECONCILE, name: 'failure action rollback: swaps to the previous spec and rolls back with the rollback config' } },
  'rollback.order': { test: { file: RECONCILE, name: 'failure action rollback: swaps to the previous spec and rolls back with the rollback config' } },
  'endpoint.mode': { test: { file: DISCOVERY_LAB, name: "answers service names, tasks.NAME, aliases, dnsrr names and outside names, scoped to the asker's networks" } },
  'endpoint.ports.name': {
    refused: (s) => {
      s.endpoint = { mode: EndpointSpec_ResolutionMode.RESOLUTION_MODE_VIP, ports: [{ name: 'web', protocol: PortConfig_Protocol.PROTOCOL_TCP, targetPort: 80, publishedPort: 8080, publishMode: PortConfig_PublishMode.PUBLISH_MODE_HOST }] };
    },
  },
  'endpoint.ports.protocol': { test: { file: ORCH_LAB, name: 'publishes a host-mode port on each worker, reachable from another host; a third replica stays pending; nothing left after removal' } },
  'endpoint.ports.targetPort': { test: { file: ORCH_LAB, name: 'publishes a host-mode port on each worker, reachable from another host; a third replica stays pending; nothing left after removal' } },
  'endpoint.ports.publishedPort': { test: { file: ORCH_LAB, name: 'publishes a host-mode port on each worker, reachable from another host; a third replica stays pending; nothing left after removal' } },
  'endpoint.ports.publishMode': { test: { file: ORCH_LAB, name: 'publishes a host-mode port on each worker, reachable from another host; a third replica stays pending; nothing left after removal' } },
};

/** Effects of the user service that root cannot show: capabilities of a non-root user. */
export const EXTRA_PROBES: Record<string, Probe> = {
  'user: bounding set kept': { service: 'user', sh: `${BB} grep CapBnd /proc/self/status`, expect: /^CapBnd:\s+0000000000000400$/ },
  'user: nothing effective': { service: 'user', sh: `${BB} grep CapEff /proc/self/status`, expect: /^CapEff:\s+0000000000000000$/ },
  'user: nothing permitted': { service: 'user', sh: `${BB} grep CapPrm /proc/self/status`, expect: /^CapPrm:\s+0000000000000000$/ },
  'root: permitted as effective': { service: 'root', sh: `${BB} grep CapPrm /proc/self/status`, expect: new RegExp(`^CapPrm:\\s+${ROOT_CAPS}$`) },
  'init: PID 1 is the init': { service: 'init', sh: `${BB} tr '\\0' ' ' < /proc/1/cmdline`, expect: /^\/sbin\/docker-init -- sh -c / },
};
