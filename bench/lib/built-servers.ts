import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from 'node:worker_threads';
import { progress } from './harness';

const ROOT = path.join(__dirname, '..', '..');
const OUT = path.join(ROOT, '.cache', 'bench-build');
/** Read at run time next to the code (`src/infra/migrator.ts`, `console.assets.ts`). */
const LINKED = ['migrations', path.join('src', 'modules', 'console', 'public')];

let built = false;

/**
 * `source` (relative to the repository: `bench/servers/ranking.ts`, `src/main.ts`) compiled to
 * JavaScript with the rest of `src` (bench/tsconfig.servers.json, once per bench process), so
 * that a server under measurement runs as the image does (`node dist/main.js`), not under
 * ts-node: a worker thread under ts-node loads the TypeScript compiler (about 20 MB of heap it
 * collects over and over, on the cores being measured) and reaches its work seconds later.
 */
export function compiled(source: string): string {
  if (!built) {
    progress('compiling src and the bench servers to JavaScript (tsc)');
    rmSync(OUT, { recursive: true, force: true });
    execFileSync('npx', ['tsc', '-p', path.join(ROOT, 'bench', 'tsconfig.servers.json')], {
      cwd: ROOT,
      stdio: ['ignore', 2, 2],
    });
    for (const linked of LINKED) {
      mkdirSync(path.dirname(path.join(OUT, linked)), { recursive: true });
      symlinkSync(path.join(ROOT, linked), path.join(OUT, linked));
    }
    built = true;
  }
  return path.join(OUT, source.replace(/\.ts$/, '.js'));
}

/**
 * The V8 flags the image's ENTRYPOINT gives every role (Dockerfile; `npm start` the same), which
 * NODE_OPTIONS cannot carry (it takes only a few V8 flags), then BENCH_SERVER_NODE_ARGS (extra
 * flags for the benches' servers, e.g. `--cpu-prof` to profile one).
 */
export function serverNodeArgs(): string[] {
  const extra = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  return [...IMAGE_V8_FLAGS, ...extra];
}

/**
 * A load generator's worker thread (`source` compiled like the servers). Its collections count in
 * the latencies it measures, so this process takes the image's V8 flags first (V8 flags hold for
 * every thread of a process): with V8's defaults the generator's old generation limit sat just
 * above its live 9 MB (the request bodies) and it ran a full mark-compact every 0.6 s.
 */
export function generatorWorker(source: string, options: WorkerOptions): Worker {
  setFlagsFromString(IMAGE_V8_FLAGS.join(' '));
  return new Worker(compiled(source), options);
}

/** Kept in step with the Dockerfile's ENTRYPOINT and scripts/dev.sh (docs/design-notes.md). */
const IMAGE_V8_FLAGS = ['--no-memory-reducer', '--heap-growing-percent=200'];
