// `service create|update --with-registry-auth` and `--resolve-image`: the credential for the image's
// registry, read from the client's Docker configuration as the docker CLI writes it, goes with the
// request (the manager keeps it sealed with the service and hands it only to the nodes that pull
// the service's image); the resolution mode tells the manager whether to pin the image's tag to
// its digest. The config.json reading is a pure function of the file's text (credentialFromConfig);
// the shell around it finds and reads the file.
//
// ~/.docker/config.json (or $DOCKER_CONFIG/config.json):
//   { "auths": { "10.0.0.1:5000": { "auth": "<base64 user:password>" },
//                "https://index.docker.io/v1/": { "username": "u", "password": "p" },
//                "registry.example": { "identitytoken": "<OAuth2 refresh token>" } },
//     "credsStore": "desktop", "credHelpers": { "gcr.io": "gcr" } }   ← helpers: not supported
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ResolveImage } from '../../proto/gen/tswarm/control.js';
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { DOCKER_HUB_CONFIG_KEY, DOCKER_HUB_REGISTRY, isDockerHub, parseImageReference, registryHostOf, sameRegistry } from '../../common/image-reference.js';
import { FlagError } from './service-spec.js';

const FLAG = '--with-registry-auth';

/** The Docker configuration cannot give the credential: names the file, the key looked up and the rule. Bad usage (exit 2). */
export class RegistryAuthError extends FlagError {
  constructor(
    readonly file: string,
    readonly key: string,
    rule: string,
  ) {
    super(FLAG, `${file}: ${rule}`);
  }
}

/** Where the docker CLI keeps its configuration: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  return join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json');
}

/** The registry an image is pulled from, as the credential names it, and the key `docker login` files it under. */
export function registryOf(image: string): { host: string; key: string } {
  const { domain } = parseImageReference(image, '--image');
  if (domain === undefined || isDockerHub(domain)) return { host: DOCKER_HUB_REGISTRY, key: DOCKER_HUB_CONFIG_KEY };
  return { host: domain, key: domain };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The credential for `image`'s registry in a config.json's text. The entry is `auths[<registry
 * host>]` (Docker Hub's is `https://index.docker.io/v1/`; a key written as a URL, e.g.
 * `https://10.0.0.1:5000/`, matches its host), holding `auth` (base64 of user:password) or
 * `username` and `password`, and/or `identitytoken`. Credential helpers (`credsStore`, and
 * `credHelpers` for the registry) are refused, saying so: this client does not run them.
 */
export function credentialFromConfig(text: string, file: string, image: string): RegistryAuth {
  const { host, key } = registryOf(image);
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (err) {
    throw new RegistryAuthError(file, key, `is not JSON (${(err as Error).message})`);
  }
  if (!isObject(config)) throw new RegistryAuthError(file, key, 'must hold a JSON object');
  const helpers = config.credHelpers;
  if (helpers !== undefined && !isObject(helpers)) throw new RegistryAuthError(file, key, '"credHelpers" must be an object');
  const helper = Object.entries(helpers ?? {}).find(([k]) => sameRegistry(k, host));
  if (helper) {
    throw new RegistryAuthError(file, key, `credHelpers["${helper[0]}"] gives the credential for ${host} to the helper docker-credential-${String(helper[1])}; credential helpers are not supported: put the credential in auths["${key}"] (docker login with no helper configured writes it there)`);
  }
  if (config.credsStore !== undefined && config.credsStore !== '') {
    const store = typeof config.credsStore === 'string' ? config.credsStore : JSON.stringify(config.credsStore);
    throw new RegistryAuthError(file, key, `"credsStore": "${store}" keeps credentials in the helper docker-credential-${store}; credential helpers are not supported: put the credential in auths["${key}"] (docker login with no helper configured writes it there)`);
  }
  const auths = config.auths ?? {};
  if (!isObject(auths)) throw new RegistryAuthError(file, key, '"auths" must be an object');
  const found = Object.prototype.hasOwnProperty.call(auths, key) ? key : Object.keys(auths).find((k) => sameRegistry(k, host));
  if (found === undefined) throw new RegistryAuthError(file, key, `has no credential for ${host} (auths["${key}"]); log in first: docker login${key === DOCKER_HUB_CONFIG_KEY ? '' : ` ${key}`}`);
  const entry = auths[found];
  const where = `auths["${found}"]`;
  if (!isObject(entry)) throw new RegistryAuthError(file, key, `${where} must be an object`);
  for (const f of ['auth', 'username', 'password', 'identitytoken'] as const) {
    if (entry[f] !== undefined && typeof entry[f] !== 'string') throw new RegistryAuthError(file, key, `${where}.${f} must be a string`);
  }
  let username = (entry.username as string | undefined) ?? '';
  let password = (entry.password as string | undefined) ?? '';
  if (entry.auth) {
    const plain = Buffer.from(entry.auth as string, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(entry.auth as string) || colon < 0) throw new RegistryAuthError(file, key, `${where}.auth must be the base64 of user:password`);
    username = plain.slice(0, colon);
    password = plain.slice(colon + 1);
  }
  const identityToken = (entry.identitytoken as string | undefined) ?? '';
  if (!identityToken && !username) throw new RegistryAuthError(file, key, `${where} holds no credential: it needs "auth" (base64 of user:password), "username" and "password", or "identitytoken"`);
  return { serverAddress: host, username, password, identityToken };
}

/** Reads the client's Docker configuration for `image`'s credential. */
export function readRegistryAuth(image: string, env: NodeJS.ProcessEnv = process.env): RegistryAuth {
  const file = dockerConfigPath(env);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const { key } = registryOf(image);
    const e = err as NodeJS.ErrnoException;
    throw new RegistryAuthError(file, key, e.code === 'ENOENT' ? `does not exist, so it has no credential for ${registryHostOf(key)} (auths["${key}"]); log in first (docker login), or set DOCKER_CONFIG to the directory that holds config.json` : `cannot be read (${e.code ?? e.message})`);
  }
  return credentialFromConfig(text, file, image);
}

/** `--resolve-image always|changed|never` (yargs checks the choice). */
export function resolveImageMode(flag: string | undefined): ResolveImage {
  switch (flag ?? 'always') {
    case 'changed':
      return ResolveImage.RESOLVE_IMAGE_CHANGED;
    case 'never':
      return ResolveImage.RESOLVE_IMAGE_NEVER;
    default:
      return ResolveImage.RESOLVE_IMAGE_ALWAYS;
  }
}

/** The flags' part of a create or update request: the credential (when asked for) and the resolution mode. */
export function imageRequestOptions(flags: { 'with-registry-auth'?: boolean | undefined; 'resolve-image'?: string | undefined }, image: string): { registryAuth?: RegistryAuth; resolveImage: ResolveImage } {
  return { ...(flags['with-registry-auth'] ? { registryAuth: readRegistryAuth(image) } : {}), resolveImage: resolveImageMode(flags['resolve-image']) };
}

/** The manager's warnings (e.g. an image it could not pin), on standard error. */
export function printWarnings(warnings: string[] | undefined): void {
  for (const w of warnings ?? []) process.stderr.write(`swarmctl: warning: ${w}\n`);
}
