// Reachability probe run on lab hosts (plain JavaScript, so it needs no build).
//   node probe.mjs serve PORT                  TCP echo server on all addresses; prints "listening"
//   node probe.mjs connect HOST PORT TIMEOUT   one round trip; exit 0 on success, 1 with the reason
import net from 'node:net';

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'serve') {
  const server = net.createServer((sock) => sock.pipe(sock));
  server.listen(Number(rest[0]), '0.0.0.0', () => console.log('listening'));
} else if (mode === 'connect') {
  const [host, port, timeout] = rest;
  const sock = net.connect({ host, port: Number(port) });
  const fail = (why) => {
    console.log(`unreachable: ${why}`);
    process.exit(1);
  };
  sock.setTimeout(Number(timeout ?? 1000), () => fail('timeout'));
  sock.on('error', (err) => fail(err.code ?? err.message));
  sock.on('connect', () => sock.write('ping\n'));
  sock.on('data', (d) => {
    if (d.toString() === 'ping\n') {
      console.log('reachable');
      process.exit(0);
    }
  });
} else {
  console.error('usage: probe.mjs serve PORT | connect HOST PORT TIMEOUT_MS');
  process.exit(2);
}
