// Image references as Docker reads them (distribution/reference's ParseNormalizedNamed), shared by
// swarmctl (which credential of ~/.docker/config.json goes with an image), the control API (is an
// image pinned to a digest yet; pinning it) and the agent (where to pull from). Pure: no I/O.
//
//   busybox                          Docker Hub, library/busybox, tag latest
//   docker.io/team/app:1             Docker Hub, team/app, tag 1
//   10.0.0.1:5000/app@sha256:…       registry 10.0.0.1:5000, app, by digest
//   localhost/app:t@sha256:…         registry localhost, app, tag t and digest (the digest is what counts)
import { InvalidArgumentError } from './errors.js';

/** Docker Hub's names: the one users write, the legacy index, and the host its API is served from. */
export const DOCKER_HUB = 'docker.io';
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';
/** The key of Docker Hub's entry in ~/.docker/config.json (`docker login` writes it so). */
export const DOCKER_HUB_CONFIG_KEY = 'https://index.docker.io/v1/';

const HUB_ALIASES = new Set([DOCKER_HUB, 'index.docker.io', DOCKER_HUB_REGISTRY]);

export interface ImageReference {
  /** The registry as written in the reference (`10.0.0.1:5000`, `docker.io`); undefined when the name has none. */
  domain: string | undefined;
  /**
   * The repository path as the registry knows it: Docker Hub's one-component names get `library/`
   * (so do names without a registry, which go to Docker Hub or the node's default registry).
   */
  path: string;
  tag: string | undefined;
  /** `sha256:<64 hex>`; when a reference has both a tag and a digest, the digest is what is pulled. */
  digest: string | undefined;
}

const FIELD = 'spec.task.container.image';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?$/;

/**
 * Parses a reference as Docker does. The first path component names a registry when it has a dot
 * or a colon, is `localhost`, or has upper-case letters; `index.docker.io` is read as `docker.io`.
 * Throws InvalidArgumentError naming `field` and the rule broken.
 */
export function parseImageReference(image: string, field = FIELD): ImageReference {
  if (!image || /\s/.test(image)) throw new InvalidArgumentError(field, `"${image}" is not an image reference`);
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new InvalidArgumentError(field, `"${image}": the digest must be sha256:<64 hex digits>`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new InvalidArgumentError(field, `"${image}": "${tag}" is not a tag`);
  }
  let domain: string | undefined;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      if (!DOMAIN.test(first)) throw new InvalidArgumentError(field, `"${image}": "${first}" is not a registry host`);
      domain = first === 'index.docker.io' ? DOCKER_HUB : first;
      rest = rest.slice(slash + 1);
    }
  }
  if (!rest.split('/').every((c) => COMPONENT.test(c))) throw new InvalidArgumentError(field, `"${image}": "${rest}" is not a repository name`);
  const hub = domain === undefined || isDockerHub(domain);
  const path = hub && !rest.includes('/') ? `library/${rest}` : rest;
  if ((domain ?? '').length + path.length > 255) throw new InvalidArgumentError(field, `"${image}": the name is longer than 255 characters`);
  return { domain, path, tag, digest };
}

/** Whether a registry host (or config.json key) names Docker Hub. */
export function isDockerHub(host: string): boolean {
  return HUB_ALIASES.has(registryHostOf(host));
}

/** A registry host as written in a credential or a config.json key: `https://h:5000/v1/` → `h:5000`, lower case. */
export function registryHostOf(server: string): string {
  return server
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
}

/**
 * Whether a credential saved for `server` (a host, or a config.json key) is for `registryHost`:
 * the same host, Docker Hub's names counting as one. A credential is never sent to another
 * registry than the one it was given for.
 */
export function sameRegistry(server: string, registryHost: string): boolean {
  const a = registryHostOf(server);
  const b = registryHostOf(registryHost);
  return a === b || (HUB_ALIASES.has(a) && HUB_ALIASES.has(b));
}

/** Whether the reference pins a digest (`name@sha256:…` or `name:tag@sha256:…`). */
export function hasDigest(image: string): boolean {
  return /@sha256:[0-9a-f]{64}$/.test(image);
}

/**
 * The reference pinned to `digest`, as Docker writes it: the name as given (a name without a
 * registry stays without one: a node's `--default-registry` applies to it), the tag (`latest`
 * when none was given), then the digest: `busybox:latest@sha256:…`,
 * `10.0.0.1:5000/app:t@sha256:…`.
 */
export function pinnedReference(image: string, digest: string): string {
  const r = parseImageReference(image);
  if (!DIGEST.test(digest)) throw new InvalidArgumentError('digest', `"${digest}" must be sha256:<64 hex digits>`);
  return `${familiarName(r)}:${r.tag ?? 'latest'}@${digest}`;
}

/** The repository name as written: `busybox`, `team/app`, `10.0.0.1:5000/app` (a bare `library/x` is `x`: the same repository). */
export function familiarName(r: ImageReference): string {
  if (r.domain !== undefined) return `${r.domain}/${r.path}`;
  return r.path.startsWith('library/') && r.path.split('/').length === 2 ? r.path.slice('library/'.length) : r.path;
}
