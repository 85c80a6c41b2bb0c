import { ChildProcess, fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { closedLoop } from './lib/closed-loop';
import { loadConfig } from '../src/config/config';
import { Random } from '../src/synthetic';
import { createBenchApiKey } from './lib/api-key';
import { clearRedis, databaseUrlFor, seedCatalogAndWeek } from './lib/bench-store';
import { Benchmark, integerFlag, progress } from './lib/harness';
import type { RecommendServerReady, ServerAnswer, ServerRequest } from './servers/recommend';
import { rssBytes } from './servers/recommend';
import { compiled, serverNodeArgs } from './lib/built-servers';

const STARTUP_TIMEOUT_MS = 3 * 3_600_000;
const RECOMMEND = `query Recommend($u: ID!) {
  recommend(userId: $u, first: 20) { items { itemId score } modelVersion requestId } }`;
/** The same, with what the recall check needs to tell a real answer from a fallback. */
const RECOMMEND_CHECKED = `query Recommend($u: ID!) {
  recommend(userId: $u, first: 20) { items { itemId } degraded } }`;
const DATABASE = 'recsys_bench_recommend';
const SEED = 'bench-recommend';
/** The exact scan serves whatever the catalog size. */
const NEVER = String(Number.MAX_SAFE_INTEGER);

interface Settings {
  readonly items: number;
  readonly large: number;
  readonly users: number;
  readonly impressions: number;
  readonly dimension: number;
  readonly warmupSeconds: number;
  readonly measureSeconds: number;
  readonly connections: number;
  readonly recallUsers: number;
  /** How the stand-in model places item vectors (fakeCategoryModel's `vectors`). */
  readonly vectors: 'words' | 'category';
}

function parseSettings(args: readonly string[]): Settings {
  const value = (flag: string, fallback: number): number => integerFlag(args, flag, fallback, 0);
  const items = value('items', 50_000);
  const large = value('large', 1_000_000);
  // The third run serves `large - items` extra items: at or below --items it would be a repeat.
  if (large <= items) throw new Error(`--large (${large}) must be more than --items (${items})`);
  return {
    items,
    large,
    users: value('users', 2000),
    impressions: value('impressions', 200_000),
    dimension: value('dimension', 384),
    warmupSeconds: value('warmup', 5),
    measureSeconds: value('measure', 15),
    connections: value('connections', 32),
    recallUsers: value('recall-users', 200),
    vectors: vectorsFlag(args),
  };
}

function vectorsFlag(args: readonly string[]): Settings['vectors'] {
  const index = args.indexOf('--vectors');
  if (index === -1) return 'words';
  const value = args[index + 1];
  if (value !== 'words' && value !== 'category') throw new Error('--vectors: words or category');
  return value;
}

/**
 * A fresh database with the catalog and the last 7 days of behaviour (as bench/ranking.bench.ts
 * seeds it); returns each active user's history, most recent first.
 */
async function seed(settings: Settings, databaseUrl: string) {
  const { events } = await seedCatalogAndWeek(databaseUrl, { ...settings, seed: SEED });
  const histories = new Map<string, { itemId: string; ts: number }[]>();
  for (const event of events) {
    if (event.type === 'impression') continue;
    const history = histories.get(event.userId) ?? [];
    history.push({ itemId: event.itemId, ts: new Date(event.timestamp).getTime() });
    histories.set(event.userId, history);
  }
  const byUser = new Map(
    [...histories].map(([userId, history]) => [
      userId,
      history.sort((a, b) => b.ts - a.ts).map((entry) => entry.itemId),
    ]),
  );
  return { byUser, events: events.length };
}

interface Run {
  readonly label: string;
  readonly ready: RecommendServerReady;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  /** The recommend answers' first 20 against those of the exact scan, same users and state. */
  readonly recallAt20: number;
  /** The served retrieval's top 20 by model score against the exact scan's. */
  readonly retrievalRecallAt20: number;
  readonly rssAfterBytes: number;
  /** The server's V8 heap at the same moment: used, and its total with the room to grow. */
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly externalBytes: number;
}

function startServer(
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; ready: RecommendServerReady }> {
  const child = fork(compiled('bench/servers/recommend.ts'), [], {
    execArgv: serverNodeArgs(),
    env: { ...process.env, ...env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  child.stdout?.pipe(process.stderr);
  child.stderr?.pipe(process.stderr);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('recommend server did not start in time'));
    }, STARTUP_TIMEOUT_MS);
    child.once('message', (ready: RecommendServerReady) => {
      clearTimeout(timer);
      resolve({ child, ready });
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`recommend server exited before listening (code ${String(code)})`));
    });
  });
}

function ask<T extends ServerRequest['type']>(
  child: ChildProcess,
  request: Extract<ServerRequest, { type: T }>,
): Promise<Extract<ServerAnswer, { type: T }>> {
  return new Promise((resolve) => {
    child.once('message', (answer: Extract<ServerAnswer, { type: T }>) => {
      resolve(answer);
    });
    child.send(request);
  });
}

/** The item ids of each user's recommend answer, one request at a time; only full answers. */
async function answers(
  url: string,
  headers: Record<string, string>,
  users: readonly string[],
): Promise<string[][]> {
  const found: string[][] = [];
  for (const user of users) {
    const body = JSON.stringify({ query: RECOMMEND_CHECKED, variables: { u: user } });
    const response = await fetch(url, { method: 'POST', headers, body });
    const { data } = (await response.json()) as {
      data?: { recommend?: { items: { itemId: string }[]; degraded: string[] } };
    };
    const answer = data?.recommend;
    // A cold user or an error would compare fallbacks, not retrievals.
    if (answer === undefined || answer.degraded.length > 0 || answer.items.length === 0) {
      throw new Error(`recommend for ${user}: no full answer (${JSON.stringify(answer)})`);
    }
    found.push(answer.items.map((item) => item.itemId));
  }
  return found;
}

/** The share of `expected`'s ids that `found` holds, over all answers. */
function overlap(found: readonly string[][], expected: readonly string[][]): number {
  let hits = 0;
  let total = 0;
  expected.forEach((ids, i) => {
    const served = new Set(found[i]);
    hits += ids.filter((id) => served.has(id)).length;
    total += ids.length;
  });
  return hits / Math.max(1, total);
}

const MIB = 2 ** 20;
/** Bytes as whole MiB, grouped as the table's numbers are (1,149). */
const mib = (bytes: number) => Math.round(bytes / MIB).toLocaleString('en-US');

const benchmark: Benchmark = {
  description:
    'recommend(first: 20): exact scan at 50,000 items vs ANN (HNSW) at 50,000 and 1,000,000 items, 384-d',
  async run(args) {
    const settings = parseSettings(args);
    const base = loadConfig(process.env);
    const databaseUrl = databaseUrlFor(base.postgres.url, DATABASE);
    const prefix = `bench:recommend:${process.pid}:`;
    progress(`seeding ${settings.items} items, ${settings.users} users into ${DATABASE}`);
    const { byUser, events } = await seed(settings, databaseUrl);
    const headers = {
      'content-type': 'application/json',
      'x-api-key': await createBenchApiKey(databaseUrl, 'read'),
    };
    const random = new Random('bench-recommend-requests');
    const users = random.sample([...byUser.keys()], byUser.size);
    const bodies = users.map((user) =>
      JSON.stringify({ query: RECOMMEND, variables: { u: user } }),
    );
    const recallUsers = users.slice(0, settings.recallUsers);
    const recallHistories = recallUsers.map((user) =>
      (byUser.get(user) ?? []).slice(0, base.ranking.historyLength),
    );
    const loadBefore = loadavg()[0] ?? 0;
    const runs: Run[] = [];
    const measure = async (label: string, env: Record<string, string>) => {
      progress(`${label}: starting the server (model, online state, index build when ANN)`);
      let child: ChildProcess | undefined;
      const kill = () => child?.kill('SIGKILL');
      process.once('exit', kill);
      try {
        const started = await startServer({
          DATABASE_URL: databaseUrl,
          REDIS_URL: base.redis.url,
          REDIS_KEY_PREFIX: prefix,
          LOG_LEVEL: 'warn',
          AUTH_MODE: 'api-key',
          SERVED_LOG_ENABLED: 'false',
          // The stand-in model is no registered version: there is nothing to store its index for.
          RECOMMEND_ANN_STORE: 'false',
          BENCH_ITEMS: String(settings.items),
          BENCH_SEED: SEED,
          BENCH_DIMENSION: String(settings.dimension),
          BENCH_VECTORS: settings.vectors,
          ...env,
        });
        child = started.child;
        const { ready } = started;
        const url = `http://127.0.0.1:${ready.port}/graphql`;
        progress(
          `${label}: ${ready.items} item vectors, index ${ready.indexed ? `built in ${((ready.indexBuildMs ?? 0) / 1000).toFixed(0)} s` : 'none'}; warm-up`,
        );
        // One recommend per user caches every user vector, then a timed warm-up.
        await closedLoop(url, headers, bodies, {
          amount: bodies.length,
          connections: settings.connections,
        });
        await closedLoop(url, headers, bodies, {
          seconds: settings.warmupSeconds,
          connections: settings.connections,
        });
        const measured = await closedLoop(url, headers, bodies, {
          seconds: settings.measureSeconds,
          connections: settings.connections,
        });
        const server = child;
        if (server.pid === undefined) throw new Error('the server has no pid');
        const rssAfterBytes = rssBytes(server.pid);
        const { heapUsedBytes, heapTotalBytes, externalBytes } = await ask(server, {
          type: 'memory',
        });
        const retrieval = await ask(server, {
          type: 'recall',
          histories: recallHistories,
          k: 20,
          pool: base.ranking.recommendPool,
        });
        if (retrieval.users < recallHistories.length) {
          throw new Error(`the server knows ${retrieval.users} of the recall users' histories`);
        }
        let recallAt20 = 1;
        if (ready.indexed) {
          progress(`${label}: the recall users' answers, through the index then the exact scan`);
          const served = await answers(url, headers, recallUsers);
          await ask(server, { type: 'exact' });
          recallAt20 = overlap(served, await answers(url, headers, recallUsers));
        }
        runs.push({
          label,
          ready,
          ...measured,
          recallAt20,
          retrievalRecallAt20: retrieval.recallAtK,
          rssAfterBytes,
          heapUsedBytes,
          heapTotalBytes,
          externalBytes,
        });
        // Each run's figures as soon as they are measured: a long large-catalog build may not end.
        progress(`${label}: ${JSON.stringify(runs.at(-1))}`);
      } finally {
        child?.kill('SIGKILL');
        process.removeListener('exit', kill);
        await clearRedis(base.redis.url, prefix).catch(() => undefined);
      }
    };
    const small = settings.items.toLocaleString('en-US');
    const large = settings.large.toLocaleString('en-US');
    await measure(`exact scan, ${small} items, JavaScript kernel (issue #20's reference)`, {
      RECOMMEND_ANN_MIN_ITEMS: NEVER,
      BENCH_JS_KERNEL: '1',
    });
    await measure(`exact scan, ${small} items (SIMD kernel, as served)`, {
      RECOMMEND_ANN_MIN_ITEMS: NEVER,
    });
    await measure(`ANN, ${small} items`, { RECOMMEND_ANN_MIN_ITEMS: '1' });
    await measure(`ANN, ${large} items`, {
      RECOMMEND_ANN_MIN_ITEMS: '1',
      BENCH_EXTRA_ITEMS: String(Math.max(0, settings.large - settings.items)),
    });
    const [exact, exactServed, , annLarge] = runs;
    const ratio = annLarge.requestsPerSecond / exact.requestsPerSecond;
    const ratioOverServedExact = annLarge.requestsPerSecond / exactServed.requestsPerSecond;
    const minRecall = Math.min(...runs.slice(2).map((run) => run.recallAt20));
    const minRetrievalRecall = Math.min(...runs.slice(2).map((run) => run.retrievalRecallAt20));
    return {
      title: `recommend(first: 20) through GraphQL, ${settings.dimension}-d item vectors placed by ${settings.vectors}, ${settings.connections} connections, ${settings.measureSeconds} s each after warm-up`,
      rows: runs.map((run) => ({
        retrieval: run.label,
        'requests/s': Math.round(run.requestsPerSecond),
        'p50 ms': run.p50Ms,
        'p99 ms': run.p99Ms,
        errors: run.errors,
        'recall@20': Number(run.recallAt20.toFixed(3)),
        'retrieval recall@20': Number(run.retrievalRecallAt20.toFixed(3)),
        'index build s': run.ready.indexed ? Math.round((run.ready.indexBuildMs ?? 0) / 1000) : '-',
        'index MiB': Math.round(run.ready.indexBytes / MIB),
        'RSS MiB': Math.round(run.rssAfterBytes / MIB),
        'V8 heap used / total MiB': `${mib(run.heapUsedBytes)} / ${mib(run.heapTotalBytes)}`,
        'external MiB': Math.round(run.externalBytes / MIB),
      })),
      figures: {
        settings,
        runs,
        ratioAnnLargeOverExactSmall: ratio,
        ratioAnnLargeOverServedExactSmall: ratioOverServedExact,
        targets: {
          ratioAtLeast: 5,
          ratioMet: ratio >= 5,
          recallAt20AtLeast: 0.95,
          recallMet: minRecall >= 0.95,
          retrievalRecallMet: minRetrievalRecall >= 0.95,
        },
        loadAverage1mBefore: loadBefore,
        retrieval: base.retrieval,
      },
      notes: [
        `ratio ANN ${large} items / exact scan ${small} items as issue #20 measured it (JavaScript kernel), requests/s: ${ratio.toFixed(2)} (target >= 5: ${ratio >= 5 ? 'met' : 'NOT met'}); over the exact scan as served now (SIMD kernel): ${ratioOverServedExact.toFixed(2)}`,
        `recall@20: each of ${recallUsers.length} users' recommend(first: 20) answer through the index against the same server's answer once its index is dropped (the exact scan), in the same state (target >= 0.95: ${minRecall >= 0.95 ? 'met' : 'NOT met'}); 1 for the exact scan by definition`,
        `retrieval recall@20: the served retrieval's top 20 by model score (index candidates re-scored exactly, pool ${base.ranking.recommendPool}) against the exact scan's, for user vectors pooled from the same users' histories, their history items left out as recommend does (>= 0.95: ${minRetrievalRecall >= 0.95 ? 'met' : 'NOT met'})`,
        `Model: the in-memory stand-in model (dimension ${settings.dimension}, vectors placed by ${settings.vectors === 'words' ? "the words of each item's text (IDF-weighted word directions plus a little noise: close to a sentence encoder's low intrinsic dimension)" : 'category (a category direction plus isotropic noise: the hardest case for a graph index)'}) stands in for the trained scorer. ${small} items are seeded in PostgreSQL with ${events.toLocaleString('en-US')} events of ${settings.users} users; the ${large}-item run serves ${(settings.large - settings.items).toLocaleString('en-US')} more items of the same generator without catalog rows (no features; their retrieval and scoring cost the same).`,
        `Settings: ${JSON.stringify(base.retrieval)}; RANK_RECOMMEND_POOL ${base.ranking.recommendPool}; the served-slate log off.`,
        "RSS: the server process after the measurement (item vectors, index, online state, the model stand-in's own copy of the vectors). V8 heap: used, and total with the room the heap keeps between collections (the image's --heap-growing-percent=200), which RSS counts too; external: memory outside the heap that V8 knows of (the item vectors' WebAssembly memory, buffers). Index MiB: hnswlib's memory as estimated from its layout (vectors, level-0 links, labels), on the index thread.",
        `Server in a child process, compiled to JavaScript as the image runs it (api role, NODE_ENV=production, AUTH_MODE=api-key); autocannon in the bench process on the same cores; 1-minute load average before: ${loadBefore.toFixed(2)}; compare runs at a similar load.`,
      ],
    };
  },
};

export default benchmark;
