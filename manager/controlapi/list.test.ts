import { describe, expect, it } from 'vitest';
import { ControlService, ListSecretsResponse } from '../../proto/gen/tswarm/control.js';
import { Secret } from '../../proto/gen/tswarm/objects.js';
import { EncodedMessage, encodeList, passEncoded } from './list.js';

function secrets(n: number): Secret[] {
  return Array.from({ length: n }, (_, i): Secret => ({
    id: `id${i.toString(36).padStart(8, '0')}`,
    meta: { version: i + 1, createdAtUnixMs: 1_700_000_000_000 + i, updatedAtUnixMs: 1_700_000_000_000 + i },
    spec: { annotations: { name: `secret-${i}`, labels: (i % 3 === 0 ? { team: 'a' } : {}) }, data: Buffer.alloc(64, i % 256) },
  }));
}

const redact = (s: Secret): Secret => ({ ...s, spec: s.spec ? { ...s.spec, data: Buffer.alloc(0) } : undefined });

describe('encodeList', () => {
  it('encodes what the generated encoder encodes, for the objects kept, in their order', async () => {
    const all = secrets(1_000);
    const keep = (s: Secret): boolean => s.spec?.annotations?.labels?.team === 'a';
    const got = await encodeList(all, keep, Secret, redact);
    const want = ListSecretsResponse.encode({ secrets: all.filter(keep).map(redact) }).finish();
    expect(Buffer.compare(got.bytes, Buffer.from(want))).toBe(0);
    expect(ListSecretsResponse.decode(got.bytes).secrets.map((s) => s.spec?.annotations?.name)).toEqual(all.filter(keep).map((s) => s.spec?.annotations?.name));
  });

  it('answers an empty list with an empty message', async () => {
    expect((await encodeList(secrets(10), () => false, Secret)).bytes.length).toBe(0);
  });

  it('lets the event loop go again and again while it encodes a large list', async () => {
    const all = secrets(60_000);
    let turns = 0;
    let done = false;
    const tick = (): void => {
      turns++;
      if (!done) setImmediate(tick);
    };
    setImmediate(tick);
    const started = performance.now();
    const got = await encodeList(all, () => true, Secret, redact);
    const took = performance.now() - started;
    done = true;
    expect(ListSecretsResponse.decode(got.bytes).secrets).toHaveLength(60_000);
    // The loop ran in between, again and again (encoding 60,000 objects takes tens of
    // milliseconds; in one go no other turn would run until the end). How long a turn was is not
    // asserted: on a busy suite machine a wall-clock gap also counts other processes' time.
    expect(turns).toBeGreaterThan(took > 20 ? 3 : 0);
  });
});

describe('passEncoded', () => {
  it('sends an EncodedMessage as its bytes and encodes anything else as before', () => {
    const def = passEncoded(ControlService);
    const bytes = Buffer.from([1, 2, 3]);
    expect(def.listSecrets.responseSerialize(new EncodedMessage(bytes) as never)).toBe(bytes);
    const res = { secrets: secrets(2) };
    expect(Buffer.compare(def.listSecrets.responseSerialize(res), ControlService.listSecrets.responseSerialize(res))).toBe(0);
    expect(def.listSecrets.path).toBe(ControlService.listSecrets.path);
  });
});
