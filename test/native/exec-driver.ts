// A process that drives a RuntimeExecutor and then waits to be killed: the restart test of
// worker/exec runs it, kills it with -9, and adopts its containers with a new executor.
//   node dist/test/native/exec-driver.js '<JSON DriverInput>'
// It prepares and starts each container, prints one line `ready <JSON ContainerInfo[]>`, and sleeps.
import { ImageStore } from '../../worker/image/store.js';
import { RuntimeExecutor } from '../../worker/exec/runtime.js';

export interface DriverInput {
  stateDir: string;
  imageRoot: string;
  image: string;
  runtime: string;
  runtimeRoot: string;
  cgroupParent: string;
  containers: { id: string; args: string[] }[];
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '') as DriverInput;
  const images = new ImageStore(input.imageRoot);
  const image = await images.getImage(input.image);
  if (image === undefined) throw new Error(`image ${input.image} is not in ${input.imageRoot}`);
  const ex = new RuntimeExecutor({ stateDir: input.stateDir, images, runtime: input.runtime, runtimeRoot: input.runtimeRoot, cgroupParent: input.cgroupParent });
  for (const c of input.containers) {
    await ex.prepare({ id: c.id, image, args: c.args });
    await ex.start(c.id);
  }
  process.stdout.write(`ready ${JSON.stringify(await ex.list())}\n`);
  setInterval(() => undefined, 1 << 30); // until killed
}

main().catch((err: unknown) => {
  process.stderr.write(`exec-driver: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
