// Image references as users write them: `busybox`, `library/busybox:1.36`,
// `10.77.0.11:5000/library/busybox:latest`, `registry.example/x/y@sha256:…`.
import { InvalidArgumentError } from '../../common/errors.js';

export interface ImageRef {
  /** The registry's base URL. */
  registry: string;
  repository: string;
  /** A tag or a digest. */
  reference: string;
}

/**
 * The first path component names a registry when it has a dot or a port, or is `localhost`
 * (Docker's rule); otherwise `defaultRegistry` is used (none: refused), and a one-component name
 * gets `library/`.
 * A registry given by IP address or `localhost` is spoken to over plain HTTP (Docker's "insecure
 * registry" on a private network); others over HTTPS.
 */
export function parseImageRef(image: string, defaultRegistry: string): ImageRef {
  const field = 'spec.task.container.image';
  if (!image || /\s/.test(image)) throw new InvalidArgumentError(field, `"${image}" is not an image reference`);
  let rest = image;
  let registry = defaultRegistry.replace(/\/+$/, '');
  let named = false;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') {
      const host = first;
      const plain = /^(\d{1,3}(\.\d{1,3}){3}|localhost|\[[0-9a-f:]+\])(:\d+)?$/i.test(host);
      registry = `${plain ? 'http' : 'https'}://${host}`;
      rest = rest.slice(slash + 1);
      named = true;
    }
  }
  let reference = 'latest';
  const at = rest.indexOf('@');
  if (at >= 0) {
    reference = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!/^sha256:[0-9a-f]{64}$/.test(reference)) throw new InvalidArgumentError(field, `"${image}": the digest must be sha256:<64 hex digits>`);
  } else {
    const colon = rest.lastIndexOf(':');
    if (colon >= 0) {
      reference = rest.slice(colon + 1);
      rest = rest.slice(0, colon);
      if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(reference)) throw new InvalidArgumentError(field, `"${image}": "${reference}" is not a tag`);
    }
  }
  if (!/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/.test(rest)) throw new InvalidArgumentError(field, `"${image}": "${rest}" is not a repository name`);
  if (!named && !registry) throw new InvalidArgumentError(field, `"${image}" names no registry, and this node has no default registry (swarmd --default-registry URL)`);
  const repository = rest.includes('/') ? rest : `library/${rest}`;
  return { registry, repository, reference };
}
