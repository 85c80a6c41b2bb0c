import { ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { Benchmark, progress, integerFlag } from './lib/harness';
import { stopProcess } from './lib/roles';
import type { ServerReady } from './servers/common';

const QUERY = '{ health { status } }';
const EXPECTED = JSON.stringify({ data: { health: { status: 'ok' } } });
const STARTUP_TIMEOUT_MS = 90_000;

interface Settings {
  readonly warmupSeconds: number;
  readonly measureSeconds: number;
  readonly connections: number;
  readonly pipelining: number;
}

interface ServerSpec {
  readonly name: 'apollo' | 'mercurius';
  readonly stack: string;
  readonly file: string;
}

interface Measurement {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly requests: number;
}

const SERVERS: readonly ServerSpec[] = [
  { name: 'apollo', stack: 'express 5 + Apollo Server 5', file: 'graphql-apollo.ts' },
  { name: 'mercurius', stack: 'fastify 5 + Mercurius', file: 'graphql-mercurius.ts' },
];

/** `--warmup 10 --measure 15 --connections 50 --pipelining 1`; any may be omitted. */
function parseSettings(args: readonly string[]): Settings {
  const value = (flag: string, fallback: number): number => integerFlag(args, flag, fallback, 0);
  return {
    warmupSeconds: value('warmup', 10),
    measureSeconds: value('measure', 15),
    connections: value('connections', 50),
    pipelining: value('pipelining', 1),
  };
}

function version(pkg: string): string {
  const file = path.join(__dirname, '..', 'node_modules', pkg, 'package.json');
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

/** The Nest Apollo driver loads this at runtime for Express; fail before forking when it is absent. */
function assertApolloExpressIntegration(): void {
  try {
    require.resolve('@as-integrations/express5');
  } catch {
    throw new Error(
      '@as-integrations/express5 is not installed; @nestjs/apollo needs it to serve Apollo Server 5 on express',
    );
  }
}

/** Forks a server child (own event loop) and resolves with it and its port once it listens. */
async function startServer(
  spec: ServerSpec,
  children: Set<ChildProcess>,
): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(path.join(__dirname, 'servers', spec.file), [], {
    execArgv: ['-r', 'ts-node/register'],
    env: { ...process.env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.add(child);
  // Keep stdout clean for the table and the JSON line.
  child.stdout?.pipe(process.stderr);
  child.stderr?.pipe(process.stderr);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${spec.name} did not start within ${STARTUP_TIMEOUT_MS} ms`));
    }, STARTUP_TIMEOUT_MS);
    child.once('message', (message: ServerReady) => {
      clearTimeout(timer);
      resolve(message.port);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${spec.name} exited before listening (code ${code}, signal ${signal})`));
    });
  });
  return { child, port };
}

async function checkAnswer(url: string, name: string): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: QUERY }),
  });
  const body = await response.text();
  if (response.status !== 200 || JSON.stringify(JSON.parse(body)) !== EXPECTED) {
    throw new Error(`${name} answered ${response.status} ${body}`);
  }
}

async function load(url: string, settings: Settings, seconds: number): Promise<autocannon.Result> {
  return autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: QUERY }),
    connections: settings.connections,
    pipelining: settings.pipelining,
    duration: seconds,
  });
}

async function measure(spec: ServerSpec, settings: Settings, children: Set<ChildProcess>) {
  progress(`${spec.name}: starting ${spec.stack}`);
  const { child, port } = await startServer(spec, children);
  try {
    const url = `http://127.0.0.1:${port}/graphql`;
    await checkAnswer(url, spec.name);
    progress(`${spec.name}: warm-up ${settings.warmupSeconds} s (discarded)`);
    if (settings.warmupSeconds > 0) await load(url, settings, settings.warmupSeconds);
    progress(`${spec.name}: measuring ${settings.measureSeconds} s`);
    const result = await load(url, settings, settings.measureSeconds);
    const measurement: Measurement = {
      requestsPerSecond: result.requests.average,
      p50Ms: result.latency.p50,
      p99Ms: result.latency.p99,
      errors: result.errors + result.non2xx,
      requests: result.requests.total,
    };
    return measurement;
  } finally {
    await stopProcess(child);
    children.delete(child);
  }
}

const benchmark: Benchmark = {
  description:
    'Apollo (express) vs Mercurius (fastify): trivial code-first query under autocannon load',
  async run(args) {
    const settings = parseSettings(args);
    assertApolloExpressIntegration();
    const children = new Set<ChildProcess>();
    // Also covers an abrupt exit of the bench process (run.ts calls process.exit).
    const killAll = () => {
      for (const child of children) child.kill('SIGKILL');
    };
    process.once('exit', killAll);
    const loadBefore = loadavg()[0] ?? 0;
    const results = new Map<ServerSpec['name'], Measurement>();
    try {
      for (const spec of SERVERS) results.set(spec.name, await measure(spec, settings, children));
    } finally {
      killAll();
      process.removeListener('exit', killAll);
    }
    const apollo = results.get('apollo');
    const mercurius = results.get('mercurius');
    if (apollo === undefined || mercurius === undefined) throw new Error('missing measurement');
    const ratio = {
      requestsPerSecond: mercurius.requestsPerSecond / apollo.requestsPerSecond,
      p50Ms: mercurius.p50Ms / apollo.p50Ms,
      p99Ms: mercurius.p99Ms / apollo.p99Ms,
    };
    const row = (name: string, m: Measurement) => ({
      server: name,
      'requests/s': Math.round(m.requestsPerSecond),
      'p50 ms': m.p50Ms,
      'p99 ms': m.p99Ms,
      errors: m.errors,
    });
    return {
      title: `GraphQL server: ${QUERY}, ${settings.connections} connections, pipelining ${settings.pipelining}, ${settings.measureSeconds} s measured after ${settings.warmupSeconds} s warm-up`,
      rows: [
        row('apollo (express)', apollo),
        row('mercurius (fastify)', mercurius),
        {
          server: 'ratio mercurius/apollo',
          'requests/s': ratio.requestsPerSecond.toFixed(2),
          'p50 ms': ratio.p50Ms.toFixed(2),
          'p99 ms': ratio.p99Ms.toFixed(2),
          errors: '',
        },
      ],
      figures: {
        settings,
        apollo,
        mercurius,
        ratioMercuriusOverApollo: ratio,
        versions: Object.fromEntries(
          [
            '@apollo/server',
            '@as-integrations/express5',
            'express',
            'mercurius',
            'fastify',
            '@nestjs/core',
          ].map((pkg) => [pkg, version(pkg)]),
        ),
        loadAverage1mBefore: loadBefore,
      },
      notes: [
        'Each server runs in its own child process (NODE_ENV=production, no logging); autocannon runs in the bench process.',
        'Servers are measured one after the other, apollo first; on a 2-core machine load generator and server share the cores, identically for both.',
        `1-minute load average before the run: ${loadBefore.toFixed(2)} (other work on the machine adds noise).`,
      ],
    };
  },
};

export default benchmark;
