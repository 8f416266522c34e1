// Used by the lab self-test: makes a lab, starts a process on each host, prints the lab's id and
// the pids, then waits to be interrupted (SIGTERM or SIGKILL from the test).
import { Lab } from '../../dist/test/lab/lab.js';

const lab = await Lab.create({ hosts: 2 });
const pids = lab.hosts.map((h) => h.start('sleeper', 'sleep', ['3600']).pid);
console.log(JSON.stringify({ id: lab.id, pids, anchors: lab.hosts.map((h) => h.anchorPid) }));
setInterval(() => {}, 1 << 30);
