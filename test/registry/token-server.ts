// A small token server of the tests' own, for a docker-registry run with `auth: token` (see
// registry.ts): it hands out JWTs (ES256, the signing certificate in the x5c header) that the
// registry checks for real against the certificate bundle this server writes, as Docker Hub's
// auth.docker.io does for its registry:
//   GET  /token?service=S&scope=repository:R:pull,push   basic credentials, or none (anonymous)
//   POST /token  grant_type=refresh_token&refresh_token=T&service=S&scope=…&client_id=…   (OAuth2,
//        as the docker CLI exchanges an identity token)
// A refused login is a 401 with Docker Hub's body ({"details": "incorrect username or password"}).
// Anonymous clients get a token that grants nothing (the registry then refuses them itself).
// @peculiar/x509 resolves its helpers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, sign, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TokenServerOptions {
  /** Where the registry's root certificate bundle is written (its `rootcertbundle`). */
  certPath: string;
  service: string;
  issuer: string;
  /** Basic credentials accepted at GET: name → password. */
  users: Record<string, string>;
  /** Identity (refresh) tokens accepted at POST: token → user name. */
  identityTokens?: Record<string, string>;
  /** The address to listen on (default 127.0.0.1). */
  host?: string;
}

export interface TokenRequest {
  method: string;
  /** The user the request authenticated as; undefined: anonymous. */
  user: string | undefined;
  grantType: string | undefined;
  clientId: string | undefined;
  scope: string;
  status: number;
}

export interface TokenServer {
  /** The realm: http://HOST:PORT/token */
  realm: string;
  requests: TokenRequest[];
  close(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** The access a scope asks for, granted in full to a known user and not at all to anyone else. */
function access(scope: string, user: string | undefined): { type: string; name: string; actions: string[] }[] {
  const m = /^repository:([^:]+):(.+)$/.exec(scope);
  if (!m) return [];
  return [{ type: 'repository', name: m[1]!, actions: user === undefined ? [] : m[2]!.split(',') }];
}

export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    name: 'CN=tswarm-test-token-issuer',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 24 * 3600_000),
    keys,
    signingAlgorithm: alg,
  });
  writeFileSync(opts.certPath, cert.toString('pem') + '\n');
  const der = Buffer.from(cert.rawData).toString('base64');
  const keyPem = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));

  const jwt = (user: string | undefined, scope: string): string => {
    const header = { typ: 'JWT', alg: 'ES256', x5c: [der] };
    const t = Math.floor(Date.now() / 1000);
    const claims = { iss: opts.issuer, sub: user ?? '', aud: opts.service, exp: t + 300, nbf: t - 10, iat: t, jti: randomBytes(8).toString('hex'), access: access(scope, user) };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(signingInput), { key: keyPem, format: 'der', type: 'pkcs8', dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${b64url(sig)}`;
  };

  const requests: TokenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const form = req.method === 'POST' ? new URLSearchParams(Buffer.concat(chunks).toString()) : url.searchParams;
      const rec: TokenRequest = { method: req.method ?? 'GET', user: undefined, grantType: form.get('grant_type') ?? undefined, clientId: form.get('client_id') ?? undefined, scope: form.get('scope') ?? '', status: 0 };
      requests.push(rec);
      const answer = (status: number, body: unknown): void => {
        rec.status = status;
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      if (url.pathname !== '/token') return answer(404, { details: 'not found' });
      if (form.get('service') !== opts.service) return answer(400, { details: `unknown service ${form.get('service')}` });
      let user: string | undefined;
      if (req.method === 'POST') {
        if (rec.grantType !== 'refresh_token') return answer(400, { details: 'unsupported grant_type' });
        user = opts.identityTokens?.[form.get('refresh_token') ?? ''];
        if (user === undefined) return answer(401, { details: 'invalid refresh token' });
      } else {
        const auth = req.headers.authorization;
        if (auth !== undefined) {
          const [name, ...rest] = Buffer.from(auth.replace(/^Basic /, ''), 'base64').toString().split(':');
          if (!auth.startsWith('Basic ') || name === undefined || opts.users[name] === undefined || opts.users[name] !== rest.join(':')) return answer(401, { details: 'incorrect username or password' });
          user = name;
        }
      }
      rec.user = user;
      const token = jwt(user, rec.scope);
      answer(200, { token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
    });
  });
  await new Promise<void>((r) => server.listen(0, opts.host ?? '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://${opts.host ?? '127.0.0.1'}:${port}/token`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
