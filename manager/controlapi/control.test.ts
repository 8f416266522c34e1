// The control API over gRPC on loopback, on a store with the local proposer: validation errors
// name the field, duplicate names and stale versions come back as such, names and id prefixes
// resolve, secret data never comes back.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ControlClient,
  ResolveImage,
  UpdateServiceRequest_Rollback,
  type CreateSecretRequest,
  type CreateSecretResponse,
  type CreateServiceRequest,
  type CreateServiceResponse,
  type GetRequest,
  type GetSecretResponse,
  type GetServiceResponse,
  type ListRequest,
  type ListSecretsResponse,
  type ListServicesResponse,
  type RemoveRequest,
  type RemoveResponse,
  type UpdateServiceRequest,
  type UpdateServiceResponse,
} from '../../proto/gen/tswarm/control.js';
import { ContainerSpec, type ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import { MemoryStore } from '../store/memory.js';
import { LocalProposer } from '../store/local.js';
import { addControlService, ControlApi } from './control.js';

function spec(name: string, replicas = 1, image = 'busybox'): ServiceSpec {
  return {
    annotations: { name, labels: { team: 'a' } },
    mode: { $case: 'replicated', replicated: { replicas } },
    task: {
      container: ContainerSpec.fromPartial({ image, stopGracePeriodMs: 0 }),
      networks: [],
      forceUpdate: 0,
    },
  };
}

describe('control API over gRPC', () => {
  let server: grpc.Server;
  let client: ControlClient;
  // Typed promise wrappers (the generated methods are overloaded, which defeats inference).
  type Cb<Res> = (e: grpc.ServiceError | null, r: Res) => void;
  const wrap =
    <Req, Res>(fn: (req: Req, cb: Cb<Res>) => unknown) =>
    (req: Req): Promise<Res> =>
      new Promise((resolve, reject) => fn.call(client, req, (e: grpc.ServiceError | null, r: Res) => (e ? reject(e) : resolve(r))));
  const c = {
    createService: (r: CreateServiceRequest) => wrap<CreateServiceRequest, CreateServiceResponse>(client.createService.bind(client))(r),
    getService: (r: GetRequest) => wrap<GetRequest, GetServiceResponse>(client.getService.bind(client))(r),
    listServices: (r: ListRequest) => wrap<ListRequest, ListServicesResponse>(client.listServices.bind(client))(r),
    updateService: (r: UpdateServiceRequest) => wrap<UpdateServiceRequest, UpdateServiceResponse>(client.updateService.bind(client))(r),
    removeService: (r: RemoveRequest) => wrap<RemoveRequest, RemoveResponse>(client.removeService.bind(client))(r),
    createSecret: (r: CreateSecretRequest) => wrap<CreateSecretRequest, CreateSecretResponse>(client.createSecret.bind(client))(r),
    getSecret: (r: GetRequest) => wrap<GetRequest, GetSecretResponse>(client.getSecret.bind(client))(r),
    listSecrets: (r: ListRequest) => wrap<ListRequest, ListSecretsResponse>(client.listSecrets.bind(client))(r),
    removeSecret: (r: RemoveRequest) => wrap<RemoveRequest, RemoveResponse>(client.removeSecret.bind(client))(r),
  };

  beforeAll(async () => {
    const store = new MemoryStore();
    store.setProposer(new LocalProposer(store));
    server = new grpc.Server();
    // As on the local socket: this manager leads (a one-member store), the caller is root here.
    const alone = { isLeader: () => true, leaderAddr: () => undefined, credentials: () => grpc.credentials.createInsecure() };
    addControlService(server, new ControlApi(store), alone, true);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    client = new ControlClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });
  afterAll(() => {
    client?.close();
    server?.forceShutdown();
  });

  it('creates a service and finds it by id, name and id prefix', async () => {
    const { service } = await c.createService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, spec: spec('web', 3) });
    expect(service?.id).toMatch(/^[0-9a-z]{25}$/);
    expect(service?.meta?.version).toBeGreaterThan(0);
    for (const ref of [service!.id, 'web', service!.id.slice(0, 6)]) {
      expect((await c.getService({ id: ref })).service?.id).toBe(service!.id);
    }
    const listed = await c.listServices({ filters: { names: [], namePrefixes: ['we'], idPrefixes: [], labels: { team: 'a' }, serviceIds: [], nodeIds: [], desiredStates: [] } });
    expect(listed.services.map((s) => s.id)).toEqual([service!.id]);
  });

  it('refuses an invalid spec with INVALID_ARGUMENT naming the field, and writes nothing', async () => {
    const err = await c.createService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, spec: spec('bad', 1, '') }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toBe('spec.task.container.image: is required');
    const missing = await c.getService({ id: 'bad' }).catch((e: grpc.ServiceError) => e);
    expect((missing as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
  });

  it('refuses a duplicate name with ALREADY_EXISTS', async () => {
    await c.createService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, spec: spec('api') });
    const err = (await c.createService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, spec: spec('api') }).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(err.details).toBe('service name "api" is already in use');
  });

  it('updates with the version read, refuses a stale one with ABORTED, and rolls back', async () => {
    const { service } = await c.getService({ id: 'web' });
    const v = service!.meta!.version;
    const updated = await c.updateService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, serviceId: 'web', version: v, spec: spec('web', 5), rollback: UpdateServiceRequest_Rollback.ROLLBACK_NONE });
    expect(updated.service?.specVersion).toBe(2);
    const stale = (await c.updateService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, serviceId: 'web', version: v, spec: spec('web', 7), rollback: UpdateServiceRequest_Rollback.ROLLBACK_NONE }).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(stale.code).toBe(grpc.status.ABORTED);
    expect(stale.details).toMatch(/out of sequence/);
    const back = await c.updateService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, serviceId: 'web', version: updated.service!.meta!.version, rollback: UpdateServiceRequest_Rollback.ROLLBACK_PREVIOUS });
    expect(back.service?.spec?.mode).toEqual({ $case: 'replicated', replicated: { replicas: 3 } });
    const modeChange = spec('web');
    modeChange.mode = { $case: 'global', global: {} };
    const err = (await c.updateService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, serviceId: 'web', version: back.service!.meta!.version, spec: modeChange, rollback: UpdateServiceRequest_Rollback.ROLLBACK_NONE }).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(err.details).toMatch(/^spec\.mode: a service's mode cannot change/);
  });

  it('never returns a registry credential, and resolves no image without a resolver', async () => {
    const registryAuth = { serverAddress: '10.0.0.1:5000', username: 'alice', password: 'wonderland', identityToken: '' };
    const created = await c.createService({ resolveImage: ResolveImage.RESOLVE_IMAGE_ALWAYS, registryAuth, spec: spec('private', 1, '10.0.0.1:5000/app:t') });
    expect(created.warnings).toEqual([]);
    expect(created.service?.spec?.task?.container?.image).toBe('10.0.0.1:5000/app:t');
    expect(created.service?.registryAuth).toEqual(Buffer.alloc(0));
    expect((await c.getService({ id: 'private' })).service?.registryAuth).toEqual(Buffer.alloc(0));
    const listed = await c.listServices({});
    expect(listed.services.every((s) => s.registryAuth.length === 0)).toBe(true);
    await c.removeService({ id: 'private' });
  });

  it('never returns secret data, and refuses to remove a secret in use', async () => {
    const { secret } = await c.createSecret({ spec: { annotations: { name: 'db-pass', labels: {} }, data: Buffer.from('hunter2') } });
    expect(secret?.spec?.data.length).toBe(0);
    expect((await c.getSecret({ id: 'db-pass' })).secret?.spec?.data.length).toBe(0);
    const withSecret = spec('db');
    withSecret.task!.container!.secrets.push({ secretId: secret!.id, secretName: 'db-pass', file: { name: 'db-pass', uid: 0, gid: 0, mode: 0o400 } });
    await c.createService({ resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER, spec: withSecret });
    const err = (await c.removeSecret({ id: 'db-pass' }).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/in use by service db/);
    await c.removeService({ id: 'db' });
    await c.removeSecret({ id: 'db-pass' });
    expect((await c.listSecrets({})).secrets).toEqual([]);
  });
});
