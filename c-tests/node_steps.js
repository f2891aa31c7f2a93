// node_steps: a Node.js program (V8's threads, libuv's thread pool, timers). Each
// step hashes the step number with a value computed by a worker thread and with a
// file read through libuv's pool, then prints `step N <digest>`; `done <digest>` at
// the end.
const { Worker } = require('worker_threads');
const crypto = require('crypto');
const fs = require('fs');
const steps = parseInt(process.argv[2] || '40');
const worker = new Worker(`
  const { parentPort } = require('worker_threads');
  parentPort.on('message', (n) => parentPort.postMessage(n * n + 1));
`, { eval: true });
let digest = crypto.createHash('sha256');
let step = 0;
function next() {
  step++;
  worker.once('message', (sq) => {
    fs.readFile(__filename, (err, data) => {
      if (err) { console.log('FAIL', err.message); process.exit(1); }
      digest.update(`${step} ${sq} ${data.length}`);
      const d = digest.copy().digest('hex').slice(0, 16);
      console.log(`step ${step} ${d}`);
      if (step === steps) {
        console.log(`done ${d}`);
        worker.terminate().then(() => process.exit(0));
      } else {
        setTimeout(next, 40);
      }
    });
  });
  worker.postMessage(step);
}
next();
