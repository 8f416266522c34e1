// A loopback HTTP proxy in front of a registry, for tests of the distribution client:
// - bearer auth: without `Authorization: Bearer <token>` it answers 401 with a Bearer challenge
//   whose realm is its own /token endpoint, which hands out the token (to anyone, or to the
//   configured basic credentials);
// - cuts: the first `cutBlobs` blob GETs (without a Range header) of blobs longer than `cutAfter`
//   bytes are cut after `cutAfter` bytes (the connection is destroyed);
// - stalls: the same, but the connection stays open and silent (`stall`);
// - corruption: the first `corruptBlobs` blob GETs have their first byte flipped;
// - every request's method, path and Range header are recorded.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxyOptions {
  upstream: string;
  /** Require a bearer token (got from /token). */
  bearer?: boolean;
  /** Basic credentials the token endpoint demands (user:password). */
  credentials?: string;
  cutBlobs?: number;
  cutAfter?: number;
  /** With cutBlobs: stop sending but keep the connection open (a stalled download) instead of cutting. */
  stall?: boolean;
  /** The first `corruptBlobs` blob GETs (without Range) have one byte flipped. */
  corruptBlobs?: number;
}

export interface SeenRequest {
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
}

export interface Proxy {
  url: string;
  seen: SeenRequest[];
  tokenRequests: string[];
  close(): Promise<void>;
}

const TOKEN = 'test-token-0123456789';

export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  const seen: SeenRequest[] = [];
  const tokenRequests: string[] = [];
  let cutsLeft = opts.cutBlobs ?? 0;
  let corruptLeft = opts.corruptBlobs ?? 0;
  let self = '';
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const rec: SeenRequest = {
      method: req.method ?? 'GET',
      path: url,
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
    };
    seen.push(rec);
    if (url.startsWith('/token')) {
      tokenRequests.push(url);
      const want = opts.credentials === undefined ? undefined : `Basic ${Buffer.from(opts.credentials).toString('base64')}`;
      if (want !== undefined && req.headers.authorization !== want) {
        rec.status = 401;
        res.writeHead(401).end();
        return;
      }
      rec.status = 200;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: TOKEN }));
      return;
    }
    if (opts.bearer === true && req.headers.authorization !== `Bearer ${TOKEN}`) {
      const m = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url);
      const scope = m ? `,scope="repository:${m[1]}:pull"` : '';
      rec.status = 401;
      res
        .writeHead(401, { 'www-authenticate': `Bearer realm="${self}/token",service="test-registry"${scope}`, 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    const headers = { ...req.headers };
    delete headers.authorization;
    delete headers.host;
    const up = http.request(`${opts.upstream}${url}`, { method: req.method, headers }, (ur) => {
      rec.status = ur.statusCode ?? 0;
      const isBlobGet = req.method === 'GET' && /\/blobs\/sha256:/.test(url) && req.headers.range === undefined;
      const limit = opts.cutAfter ?? 1024;
      const length = Number(ur.headers['content-length'] ?? 0);
      if (isBlobGet && cutsLeft > 0 && ur.statusCode === 200 && length > limit) {
        cutsLeft--;
        res.writeHead(200, ur.headers);
        let sent = 0;
        ur.on('data', (c: Buffer) => {
          if (sent >= limit) return;
          const part = c.subarray(0, limit - sent);
          sent += part.length;
          res.write(part, () => {
            if (sent >= limit && opts.stall !== true) {
              ur.destroy();
              res.socket?.destroy();
            }
          });
        });
        return;
      }
      if (isBlobGet && corruptLeft > 0 && ur.statusCode === 200 && length > 0) {
        corruptLeft--;
        res.writeHead(200, ur.headers);
        let first = true;
        ur.on('data', (c: Buffer) => {
          if (first) {
            first = false;
            c = Buffer.from(c);
            c[0] = c[0]! ^ 0xff;
          }
          res.write(c);
        });
        ur.on('end', () => res.end());
        return;
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  self = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: self,
    seen,
    tokenRequests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
