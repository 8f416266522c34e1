// Lists answered a slice at a time. A list grows with the store: at 100,000 secrets, filtering,
// sorting and encoding the answer in one go held the leader's event loop for 250–380 ms, longer
// than the election timeout, so one `secret ls` could cost the cluster its leader. Here the
// objects are taken as they are at the call (the store replaces objects, never changes them, so
// the array of the table's values is a consistent view), then filtered and encoded a few
// milliseconds at a time with the event loop let go in between, and the answer goes to gRPC
// already encoded (EncodedMessage, passed through by the service's serializers: passEncoded).
import type * as grpc from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';

/** A response message already in its wire form. */
export class EncodedMessage {
  constructor(readonly bytes: Buffer) {}
}

/** The service definition with every method's response serializer letting an EncodedMessage through as it is. */
export function passEncoded<D extends grpc.ServiceDefinition>(def: D): D {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(def) as [string, grpc.MethodDefinition<unknown, unknown>][]) {
    out[name] = { ...m, responseSerialize: (v: unknown) => (v instanceof EncodedMessage ? v.bytes : m.responseSerialize(v)) };
  }
  return out as D;
}

/** How long one slice may hold the event loop, ms. */
const SLICE_MS = 4;
/** Objects between two looks at the clock. */
const CHECK_EVERY = 128;

/** A generated message type's encoder (ts-proto's MessageFns.encode). */
export interface Encoder<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
}

/** What a list encodes: an array, or a store's TableScan (objects decoded one at a time). */
export interface Indexed<T> {
  readonly length: number;
  at(i: number): T | undefined;
}

/**
 * A list response (a message whose field 1 repeats the objects, as every List*Response of the
 * control API) of the `items` that `keep` accepts, each as `map` makes it, in their order. Runs in
 * slices of a few milliseconds, letting the event loop go between them. One writer for the whole
 * answer, as the generated encoder does it (an array per object kept the young generation full of
 * survivors: scavenges of 20 ms).
 */
export async function encodeList<T>(items: Indexed<T>, keep: (o: T) => boolean, type: Encoder<T>, map: (o: T) => T = (o) => o): Promise<EncodedMessage> {
  const writer = new BinaryWriter();
  let sliceStart = performance.now();
  for (let i = 0; i < items.length; i++) {
    if (i % CHECK_EVERY === CHECK_EVERY - 1 && performance.now() - sliceStart > SLICE_MS) {
      await new Promise((resolve) => setImmediate(resolve));
      sliceStart = performance.now();
    }
    const o = items.at(i)!;
    if (keep(o)) type.encode(map(o), writer.uint32((1 << 3) | 2).fork()).join();
  }
  return new EncodedMessage(Buffer.from(writer.finish().buffer));
}
