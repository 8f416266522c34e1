// Image pinning and the registry credential at the control API, with a resolver that answers from
// a table in memory (the registry side is tested for real in cli/swarmd and the lab): which mode
// asks the registry when, what is stored, the warning when the registry cannot be asked, and the
// credential kept sealed, replaced only when a request brings one.
import { describe, expect, it } from 'vitest';
import { ResolveImage, UpdateServiceRequest_Rollback } from '../../proto/gen/tswarm/control.js';
import { ContainerSpec, type ServiceSpec } from '../../proto/gen/tswarm/specs.js';
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { LocalProposer } from '../store/local.js';
import { MemoryStore } from '../store/memory.js';
import { openRegistryAuth, SealError, Sealer } from '../store/sealing.js';
import { ControlApi, redactService } from './control.js';
import { shouldResolve, validateRegistryAuth, type ImageResolver } from './image-pinning.js';

const A = 'sha256:' + 'a'.repeat(64);
const B = 'sha256:' + 'b'.repeat(64);
const REG = '10.0.0.1:5000';
const alice: RegistryAuth = { serverAddress: REG, username: 'alice', password: 'wonderland', identityToken: '' };
const bob: RegistryAuth = { serverAddress: REG, username: 'bob', password: 'builder', identityToken: '' };

function spec(image: string, replicas = 1): ServiceSpec {
  return { annotations: { name: 'web', labels: {} }, mode: { $case: 'replicated', replicated: { replicas } }, task: { container: ContainerSpec.fromPartial({ image }), networks: [], forceUpdate: 0 } };
}

/** Answers from `tags` (image → digest); remembers each question and the credential it came with. */
class TableResolver implements ImageResolver {
  readonly asked: { image: string; user: string | undefined }[] = [];
  constructor(readonly tags: Map<string, string>) {}
  digestOf(image: string, auth: RegistryAuth | undefined): Promise<string> {
    this.asked.push({ image, user: auth?.username });
    const d = this.tags.get(image);
    return d ? Promise.resolve(d) : Promise.reject(new Error(`registry ${REG}, repository app, ${image}: GET failed: manifest unknown: manifest unknown (HTTP 404)`));
  }
}

function setUp(tags: [string, string][] = []) {
  const store = new MemoryStore();
  store.setProposer(new LocalProposer(store));
  const sealer = Sealer.random();
  const resolver = new TableResolver(new Map(tags));
  return { store, sealer, resolver, api: new ControlApi(store, sealer, undefined, resolver) };
}

describe('shouldResolve', () => {
  const { RESOLVE_IMAGE_ALWAYS: ALWAYS, RESOLVE_IMAGE_CHANGED: CHANGED, RESOLVE_IMAGE_NEVER: NEVER } = ResolveImage;
  it.each<[string, ResolveImage, string, string | undefined, boolean, boolean]>([
    ['always, at create', ALWAYS, 'app:t', undefined, false, true],
    ['always, the same image at an update', ALWAYS, 'app:t', 'app:t', false, true],
    ['always, a reference with a digest already', ALWAYS, `app:t@${A}`, undefined, false, false],
    ['changed, at create', CHANGED, 'app:t', undefined, false, true],
    ['changed, the same image', CHANGED, 'app:t', 'app:t', false, false],
    ['changed, another image', CHANGED, 'app:u', 'app:t', false, true],
    ['changed, a tag given again for a pinned image', CHANGED, 'app:t', `app:t@${A}`, false, true],
    ['never', NEVER, 'app:t', undefined, false, false],
    ['a rollback', ALWAYS, 'app:t', 'app:u', true, false],
  ])('%s', (_what, mode, image, previous, rollback, want) => {
    expect(shouldResolve({ mode, image, previous, rollback })).toBe(want);
  });
});

describe('pinning at the control API', () => {
  it('pins at create (always, the default), with the credential of the request', async () => {
    const { api, resolver } = setUp([[`${REG}/app:t`, A]]);
    const { service, warnings } = await api.createService(spec(`${REG}/app:t`), { registryAuth: alice });
    expect(service.spec?.task?.container?.image).toBe(`${REG}/app:t@${A}`);
    expect(warnings).toEqual([]);
    expect(resolver.asked).toEqual([{ image: `${REG}/app:t`, user: 'alice' }]);
  });

  it('keeps the reference as given with never, and asks no registry', async () => {
    const { api, resolver } = setUp([[`${REG}/app:t`, A]]);
    const { service } = await api.createService(spec(`${REG}/app:t`), { resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER });
    expect(service.spec?.task?.container?.image).toBe(`${REG}/app:t`);
    expect(resolver.asked).toEqual([]);
  });

  it('goes ahead unpinned with a warning when the registry cannot be asked', async () => {
    const { api } = setUp();
    const { service, warnings } = await api.createService(spec(`${REG}/app:nope`));
    expect(service.spec?.task?.container?.image).toBe(`${REG}/app:nope`);
    expect(warnings).toEqual([
      `image ${REG}/app:nope could not be accessed on a registry to record its digest. Each node will access ${REG}/app:nope independently, possibly leading to different nodes running different versions of the image. (registry ${REG}, repository app, ${REG}/app:nope: GET failed: manifest unknown: manifest unknown (HTTP 404))`,
    ]);
  });

  it('at an update: a pinned image stays (a scale runs the same image), a tag given again is resolved again, changed only on a change, a rollback as it was', async () => {
    const { api, resolver } = setUp([[`${REG}/app:t`, A]]);
    let { service } = await api.createService(spec(`${REG}/app:t`), { registryAuth: alice });
    resolver.tags.set(`${REG}/app:t`, B); // the tag moves
    ({ service } = await api.updateService('web', service.meta!.version, spec(service.spec!.task!.container!.image, 3), UpdateServiceRequest_Rollback.ROLLBACK_NONE));
    expect(service.spec?.task?.container?.image).toBe(`${REG}/app:t@${A}`);
    expect(resolver.asked).toHaveLength(1);
    // changed: the same image is not resolved
    ({ service } = await api.updateService('web', service.meta!.version, spec(service.spec!.task!.container!.image, 4), UpdateServiceRequest_Rollback.ROLLBACK_NONE, { resolveImage: ResolveImage.RESOLVE_IMAGE_CHANGED }));
    expect(resolver.asked).toHaveLength(1);
    // the tag given again: resolved (with the service's stored credential), now B
    ({ service } = await api.updateService('web', service.meta!.version, spec(`${REG}/app:t`, 4), UpdateServiceRequest_Rollback.ROLLBACK_NONE, { resolveImage: ResolveImage.RESOLVE_IMAGE_CHANGED }));
    expect(service.spec?.task?.container?.image).toBe(`${REG}/app:t@${B}`);
    expect(resolver.asked[1]).toEqual({ image: `${REG}/app:t`, user: 'alice' });
    // a rollback restores the previous spec as it was
    ({ service } = await api.updateService('web', service.meta!.version, undefined, UpdateServiceRequest_Rollback.ROLLBACK_PREVIOUS));
    expect(service.spec?.task?.container?.image).toBe(`${REG}/app:t@${A}`);
    expect(resolver.asked).toHaveLength(2);
  });
});

describe('the registry credential at the control API', () => {
  it('is kept sealed under registry-auth:<service id>, never returned, kept by an update without one, replaced by one with one', async () => {
    const { api, store, sealer, resolver } = setUp([[`${REG}/app:t`, A]]);
    let { service } = await api.createService(spec(`${REG}/app:t`), { registryAuth: alice });
    const stored = store.get('service', service.id)!;
    expect(stored.registryAuth.length).toBeGreaterThan(0);
    expect(stored.registryAuth.includes(Buffer.from('wonderland'))).toBe(false);
    expect(openRegistryAuth(sealer, stored)).toEqual(alice);
    expect(() => openRegistryAuth(sealer, { ...stored, id: 'other' })).toThrow(SealError);
    expect(redactService(stored).registryAuth).toEqual(Buffer.alloc(0));

    ({ service } = await api.updateService('web', service.meta!.version, spec(`${REG}/app:t`, 2), UpdateServiceRequest_Rollback.ROLLBACK_NONE));
    expect(openRegistryAuth(sealer, store.get('service', service.id)!)).toEqual(alice);
    ({ service } = await api.updateService('web', service.meta!.version, spec(`${REG}/app:t`, 2), UpdateServiceRequest_Rollback.ROLLBACK_NONE, { registryAuth: bob }));
    expect(openRegistryAuth(sealer, store.get('service', service.id)!)).toEqual(bob);
    expect(resolver.asked.map((a) => a.user)).toEqual(['alice', 'alice', 'bob']);
  });

  it('refuses a credential without a registry, or without a user or an identity token, naming the field', async () => {
    expect(() => validateRegistryAuth({ ...alice, serverAddress: '' })).toThrow('registryAuth.serverAddress: is required (the registry the credential is for)');
    expect(() => validateRegistryAuth({ ...alice, username: '', password: '' })).toThrow('registryAuth: needs a username (with its password) or an identity token');
    expect(() => validateRegistryAuth({ serverAddress: REG, username: '', password: '', identityToken: 'tok' })).not.toThrow();
    const { api, store } = setUp();
    await expect(api.createService(spec('app'), { registryAuth: { ...alice, serverAddress: '' }, resolveImage: ResolveImage.RESOLVE_IMAGE_NEVER })).rejects.toThrow(/^registryAuth\.serverAddress/);
    expect(store.list('service')).toEqual([]);
  });
});
