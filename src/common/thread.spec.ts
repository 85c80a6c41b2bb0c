import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ThreadCalls } from './thread';

/** The nice value in a /proc stat line (field 19). */
function niceOf(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[16]);
}

const linux = process.platform === 'linux';

describe('runInBackground', () => {
  (linux ? it : it.skip)('lowers the calling thread only, 10 below its process', async () => {
    const processNice = niceOf(readFileSync('/proc/self/stat', 'utf8'));
    const worker = new Worker(
      `require('ts-node').register({ transpileOnly: true, swc: false });
       const { readFileSync } = require('node:fs');
       const { runInBackground } = require(${JSON.stringify(join(__dirname, 'thread.ts'))});
       const lowered = runInBackground();
       const stat = readFileSync('/proc/thread-self/stat', 'utf8');
       require('node:worker_threads').parentPort.postMessage({ lowered, stat });`,
      { eval: true },
    );
    const reply = await new Promise<{ lowered: boolean; stat: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    expect(reply.lowered).toBe(true);
    expect(niceOf(reply.stat)).toBe(Math.min(19, processNice + 10));
    expect(niceOf(readFileSync('/proc/thread-self/stat', 'utf8'))).toBe(processNice);
  });
});

describe('ThreadCalls', () => {
  /** A thread that answers each call with its value doubled. */
  const doubler = () =>
    new Worker(
      `const { parentPort } = require('node:worker_threads');
       parentPort.on('message', ({ id, value }) => parentPort.postMessage({ id, value: value * 2 }));`,
      { eval: true },
    );

  it('ends an idle thread after endWhenIdleMs, and starts another for the next call', async () => {
    const started: Worker[] = [];
    const calls = new ThreadCalls<number>(
      'doubler',
      () => {
        const worker = doubler();
        started.push(worker);
        return worker;
      },
      false,
      50,
    );
    expect(await calls.call((id) => ({ id, value: 2 }))).toBe(4);
    // A call within the idle time goes to the same thread.
    expect(await calls.call((id) => ({ id, value: 3 }))).toBe(6);
    expect(started).toHaveLength(1);
    const exited = new Promise<number>((resolve) => started[0].once('exit', resolve));
    expect(await exited).toBe(1);
    expect(await calls.call((id) => ({ id, value: 5 }))).toBe(10);
    expect(started).toHaveLength(2);
    await calls.release()?.terminate();
  });
});
