import { ChildProcess, execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import autocannon from 'autocannon';
import { closedLoop, Measurement } from './lib/closed-loop';
import { createClient } from 'redis';
import { AppConfig, loadConfig } from '../src/config/config';
import { createLogger } from '../src/common/logger';
import { createRedisClient } from '../src/infra/redis';
import { OnlineStateRedisRepository } from '../src/modules/online-state/online-state-redis.repository';
import { Random } from '../src/synthetic';
import { createBenchApiKey } from './lib/api-key';
import { createServedTopic } from './lib/served-topic';
import { Benchmark, progress, integerFlag } from './lib/harness';
import { OpenLoop } from './lib/open-loop';
import type { OpenLoopResult } from './lib/open-loop';
import { clearRedis, databaseUrlFor, seedCatalogAndWeek } from './lib/bench-store';
import { TEXT_DIMENSION, trainServedVersion } from './lib/trained-model';
import {
  FLOOR_RANKING,
  GC_PAUSES,
  RankVariant,
  REAL_RANKING,
  SKIP_RANKING,
} from './servers/common';
import type { GcPausesReply, ServerReady } from './servers/common';
import type { GcPauses } from './lib/gc-pauses';
import { compiled, serverNodeArgs } from './lib/built-servers';
import { watchMachineStalls } from './lib/machine-stalls';
import type { LongestGaps, MachineStalls } from './lib/machine-stalls';

const STARTUP_TIMEOUT_MS = 300_000;
/** A CPU's gap between heartbeats that alone could set a window's p99 past its 20 ms target. */
const STALL_MS = 20;
const TRIVIAL = '{ health { status } }';
const RANK = `query Rank($u: ID!, $c: [CandidateInput!]!) {
  rank(userId: $u, candidates: $c) { items { itemId score } modelVersion requestId } }`;
const RECOMMEND = `query Recommend($u: ID!) {
  recommend(userId: $u, first: 20) { items { itemId score } modelVersion requestId } }`;

interface Settings {
  readonly items: number;
  readonly users: number;
  readonly impressions: number;
  readonly candidates: number;
  /** Share of `rank` requests whose user has no cached interest vector (the user tower runs). */
  readonly uncachedShare: number;
  /** Epochs of the training run that makes the served version (short: its shape is what counts). */
  readonly trainEpochs: number;
  /** Most events that training reads (TRAIN_MAX_EVENTS): a small set keeps the run short. */
  readonly trainEvents: number;
  readonly warmupSeconds: number;
  readonly measureSeconds: number;
  readonly connections: number;
  /** Runs at half rate: `rank` and the ranking-skipped reference, alternating (ABBA). */
  readonly halfRateRuns: number;
  /** Requests/s of the half-rate runs; 0: half the saturated `rank` rate. */
  readonly halfRate: number;
  /** Each half-rate run also measures the floor ranking (the least any ranking by the model does). */
  readonly floor: boolean;
  /** Rounds of the rank variants at half rate (hand, combiner, log off; experiment pairs). */
  readonly variantRounds: number;
  /** ABBA pairs of as served without and with a running experiment. */
  readonly experimentPairs: number;
  /** ABBA pairs of as served with and without the replica's copy of users' interest vectors. */
  readonly copyPairs: number;
  /** The server's threads on the last CPU, the bench's (the load generator's) on the others. */
  readonly pinServer: boolean;
  readonly variantWarmupSeconds: number;
  readonly variantSeconds: number;
}

/** `--name x` as a number in [min, max], else `fallback`. */
function fractionFlag(args: readonly string[], flag: string, fallback: number): number {
  const index = args.indexOf(`--${flag}`);
  if (index === -1) return fallback;
  const parsed = Number(args[index + 1]);
  if (!Number.isFinite(parsed) || parsed < 0 || parsed > 1) {
    throw new Error(`--${flag} needs a number from 0 to 1`);
  }
  return parsed;
}

function parseSettings(args: readonly string[]): Settings {
  const value = (flag: string, fallback: number): number => integerFlag(args, flag, fallback, 0);
  return {
    items: value('items', 50_000),
    users: value('users', 2000),
    impressions: value('impressions', 200_000),
    candidates: value('candidates', 100),
    uncachedShare: fractionFlag(args, 'uncached-share', 0.2),
    trainEpochs: integerFlag(args, 'train-epochs', 2, 1),
    trainEvents: integerFlag(args, 'train-events', 50_000, 1),
    warmupSeconds: value('warmup', 5),
    measureSeconds: value('measure', 10),
    connections: value('connections', 32),
    halfRateRuns: integerFlag(args, 'half-rate-runs', 5, 1),
    halfRate: value('half-rate', 0),
    floor: args.includes('--floor'),
    variantRounds: value('variant-rounds', 4),
    experimentPairs: value('experiment-pairs', 8),
    copyPairs: value('copy-pairs', 4),
    pinServer: args.includes('--pin-server'),
    variantWarmupSeconds: value('variant-warmup', 3),
    variantSeconds: value('variant-seconds', 6),
  };
}

const DATABASE = 'recsys_bench_ranking';

type VariantName =
  'hand' | 'combiner' | 'logOff' | 'noExperiment' | 'experiment' | 'copyOn' | 'copyOff';
const VARIANT_NAMES: readonly VariantName[] = [
  'hand',
  'combiner',
  'logOff',
  'noExperiment',
  'experiment',
  'copyOn',
  'copyOff',
];
const VARIANT_LABELS: Record<VariantName, string> = {
  hand: 'hand weights, served-slate log on (as served)',
  combiner: 'learned combiner, log on',
  logOff: 'hand weights, log off',
  noExperiment: 'as served, paired with the experiment (no experiment)',
  experiment: 'as served, experiment running (2 versions, 50/50)',
  copyOn: "as served: users' interest vectors from the replica's copy when it has them",
  copyOff: 'as served, without the replica copy (every rank reads the vector from Redis)',
};

/** An empty list of figures per variant. */
function perVariant(): Record<VariantName, number[]> {
  return Object.fromEntries(VARIANT_NAMES.map((name) => [name, [] as number[]])) as Record<
    VariantName,
    number[]
  >;
}

/** `rank` at half its saturated rate, from the bench's open-loop generator. */
interface HalfRateLoad {
  readonly rate: number;
  run(seconds: number): Promise<OpenLoopResult>;
}

/** `3.1 114.2`: the longest gap between heartbeats on each CPU, in CPU order. */
function stallSummary(gaps: LongestGaps): string {
  return gaps.map((ms) => ms.toFixed(1)).join(' ');
}

/** `29 (615 ms), 4 (141 ms), 45.6`: scavenges and full GCs with their pause totals, the longest. */
function gcSummary(gc: GcPauses): string {
  return `${gc.scavenges} (${gc.scavengeMs.toFixed(0)} ms), ${gc.fullGcs} (${gc.fullGcMs.toFixed(0)} ms), ${gc.longestMs.toFixed(1)}`;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.at(Math.floor(sorted.length / 2));
  if (middle === undefined) throw new Error('no measurement');
  return middle;
}

/** The process id Redis reports (INFO server): the bench runs on Redis's machine. */
async function redisServerPid(url: string): Promise<number> {
  const redis = createClient({ url });
  await redis.connect();
  try {
    const pid = /process_id:(\d+)/.exec(await redis.info('server'))?.[1];
    if (pid === undefined) throw new Error('Redis did not report its process_id');
    return Number(pid);
  } finally {
    await redis.close();
  }
}

/**
 * User + system CPU seconds of a process, all its threads (Linux /proc); with `thread`, of that
 * thread only (the main thread's id is the process id).
 */
function cpuSeconds(pid: number, thread?: number): number {
  const path = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
  const fields = readFileSync(path, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Seconds a process's threads spent runnable but waiting for a CPU (the second field of
 * /proc/<pid>/schedstat, main thread); NaN where the kernel keeps no schedstat.
 */
function runQueueSeconds(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return Number.NaN;
  }
}

/** Linux's USER_HZ on every architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;
const SEED = 'bench-ranking';

/** Fresh database with the catalog and behaviour; the users who did more than see items. */
async function seed(settings: Settings, databaseUrl: string) {
  const { catalog, events } = await seedCatalogAndWeek(databaseUrl, { ...settings, seed: SEED });
  const active = new Set(
    events.filter((event) => event.type !== 'impression').map((event) => event.userId),
  );
  return { catalog, users: [...active], events: events.length };
}

/**
 * Keeps the interest vectors of `users` stale: every EVICT_INTERVAL_MS, bumps their interest
 * versions through the ingest module's batch script, as an interaction of each would (the
 * `interest-changes` streams tell the replica to drop its copy; the Redis cache no longer matches).
 * The bodies cycle through all users in seconds, far longer than the interval and the replica's
 * sync, so each request of one of these users finds no vector and the user tower runs, as for a
 * user who just interacted or is new to this version.
 */
const EVICT_INTERVAL_MS = 100;

async function evictEvery(
  config: AppConfig,
  users: readonly string[],
): Promise<() => Promise<void>> {
  const redis = createRedisClient(config.redis, createLogger('silent'));
  await redis.connect();
  const online = new OnlineStateRedisRepository(redis, config);
  const delta = {
    users: users.map((userId) => ({ userId, recent: [], interactions: 1 })),
    items: [],
    events: users.length,
  };
  let evicting: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    if (users.length > 0) evicting = online.apply(delta).catch(() => undefined);
  }, EVICT_INTERVAL_MS);
  return async () => {
    clearInterval(timer);
    await evicting;
    await redis.close();
  };
}

/** Seconds until the server reports a built ANN index (retrieval_index_build_seconds_count). */
async function indexBuilt(metricsUrl: string, timeoutMs = 1_800_000): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const text = await (await fetch(metricsUrl)).text();
    const line = text.split('\n').find((l) => l.startsWith('retrieval_index_build_seconds_count'));
    if (Number(line?.split(' ').at(-1) ?? 0) > 0) return (Date.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`no ANN index built within ${timeoutMs / 1000} s`);
}

/** The `rank` stages the service times (ranking_stage_duration_seconds), in pipeline order. */
const RANK_STAGES = ['item_vectors', 'user_vector', 'online_state', 'scoring', 'merge'] as const;

/** What the server's /metrics says so far of `rank`: user-vector cache use and time inside. */
interface ServiceCounts {
  readonly hit: number;
  readonly miss: number;
  /** Answers with the user's vector from before an interaction (degraded user_vector_stale). */
  readonly stale: number;
  /** `rank` calls timed, and seconds inside `RankingService.rank` in all (any outcome). */
  readonly ranks: number;
  readonly rankSeconds: number;
  /** Seconds per stage (RANK_STAGES, and `encoding`) in all. */
  readonly stageSeconds: ReadonlyMap<string, number>;
}

async function serviceCounts(metricsUrl: string): Promise<ServiceCounts> {
  const text = await (await fetch(metricsUrl)).text();
  let hit = 0;
  let miss = 0;
  let stale = 0;
  let ranks = 0;
  let rankSeconds = 0;
  const stageSeconds = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sample = /^(ranking_\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (sample === null) continue;
    const [, name, labels, value] = sample;
    const label = (key: string) => new RegExp(`${key}="([^"]*)"`).exec(labels)?.[1];
    if (name === 'ranking_cache_requests_total' && label('cache') === 'user_vector') {
      if (label('result') === 'hit') hit = Number(value);
      if (label('result') === 'miss') miss = Number(value);
    }
    if (name === 'ranking_degraded_total' && label('reason') === 'user_vector_stale') {
      stale = Number(value);
    }
    if (label('operation') !== 'rank') continue;
    if (name === 'ranking_operation_duration_seconds_count') ranks += Number(value);
    if (name === 'ranking_operation_duration_seconds_sum') rankSeconds += Number(value);
    const stage = label('stage');
    if (name === 'ranking_stage_duration_seconds_sum' && stage !== undefined) {
      stageSeconds.set(stage, Number(value));
    }
  }
  return { hit, miss, stale, ranks, rankSeconds, stageSeconds };
}

/** Per `rank` between two counts: µs inside the service in all and per stage. */
function insideService(before: ServiceCounts, after: ServiceCounts) {
  const ranks = after.ranks - before.ranks;
  const micros = (seconds: number) => (ranks > 0 ? (seconds / ranks) * 1e6 : Number.NaN);
  const stage = (name: string) =>
    micros((after.stageSeconds.get(name) ?? 0) - (before.stageSeconds.get(name) ?? 0));
  const total = micros(after.rankSeconds - before.rankSeconds);
  const stages = Object.fromEntries(RANK_STAGES.map((name) => [name, stage(name)]));
  const staged = RANK_STAGES.reduce((sum, name) => sum + stages[name], 0) + stage('encoding');
  return { total, stages, rest: total - staged };
}

/**
 * `taskset`: every thread of process `pid` onto `cpus` (threads it starts later inherit them).
 * Needs util-linux's taskset and a second CPU.
 */
function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], {
    stdio: 'ignore',
  });
}

/** With `--pin-server`: the bench on CPUs 0 .. n-2, the server (pinned as it starts) on n-1. */
function serverCpus(settings: Settings): string | undefined {
  if (!settings.pinServer) return undefined;
  const cpus = availableParallelism();
  if (cpus < 2) throw new Error('--pin-server needs at least 2 CPUs');
  pin(process.pid, cpus === 2 ? '0' : `0-${cpus - 2}`);
  return String(cpus - 1);
}

async function startServer(
  env: NodeJS.ProcessEnv,
  cpus: string | undefined,
): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(compiled('bench/servers/ranking.ts'), [], {
    execArgv: serverNodeArgs(),
    env: { ...process.env, ...env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  if (cpus !== undefined && child.pid !== undefined) pin(child.pid, cpus);
  child.stdout?.pipe(process.stderr);
  child.stderr?.pipe(process.stderr);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error('ranking server did not start in time'));
    }, STARTUP_TIMEOUT_MS);
    child.once('message', (message: ServerReady) => {
      clearTimeout(timer);
      resolve(message.port);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ranking server exited before listening (code ${String(code)})`));
    });
  });
  return { child, port };
}

async function check(url: string, headers: Record<string, string>, body: string): Promise<void> {
  const response = await fetch(url, { method: 'POST', headers, body });
  const text = await response.text();
  const parsed = JSON.parse(text) as { errors?: unknown };
  if (response.status !== 200 || parsed.errors !== undefined) {
    throw new Error(`server answered ${response.status} ${text.slice(0, 500)}`);
  }
}

const benchmark: Benchmark = {
  description:
    'rank (100 candidates) on a trained 384-d model with uncached users, and recommend(first: 20), vs a trivial query and rank with the ranking skipped; 50,000-item catalog, one server',
  async run(args) {
    const settings = parseSettings(args);
    const base = loadConfig(process.env);
    const databaseUrl = databaseUrlFor(base.postgres.url, DATABASE);
    const prefix = `bench:ranking:${process.pid}:`;
    const topicPrefix = `bench-ranking-${process.pid}-`;
    progress(`seeding ${settings.items} items, ${settings.users} users into ${DATABASE}`);
    const { catalog, users, events } = await seed(settings, databaseUrl);
    progress(
      `${events} events; ${TEXT_DIMENSION}-d text vectors, then a FULL training run (${settings.trainEpochs} epochs)`,
    );
    const trained = await trainServedVersion(
      loadConfig({
        ...process.env,
        DATABASE_URL: databaseUrl,
        REDIS_KEY_PREFIX: prefix,
        KAFKA_TOPIC_PREFIX: topicPrefix,
        LOG_LEVEL: 'warn',
        TRAIN_EPOCHS: String(settings.trainEpochs),
        TRAIN_MAX_EVENTS: String(settings.trainEvents),
      }),
      catalog.items,
    );
    progress(
      `version ${trained.served} trained in ${trained.trainSeconds.toFixed(0)} s (${trained.outcome}), active`,
    );
    // Measured with authentication on, as served: every request carries a read key.
    const headers = {
      'content-type': 'application/json',
      'x-api-key': await createBenchApiKey(databaseUrl, 'read'),
    };
    // The served-slate log sends every answer to rank.served: measured against a real broker.
    await createServedTopic(base, topicPrefix);
    progress('starting the server (model load: item tower over the catalog; online-state rebuild)');
    let child: ChildProcess | undefined;
    let stopEvicting: (() => Promise<void>) | undefined;
    let generator: OpenLoop | undefined;
    let machineStalls: MachineStalls | undefined;
    const kill = () => child?.kill('SIGKILL');
    process.once('exit', kill);
    const loadBefore = loadavg()[0] ?? 0;
    try {
      const started = await startServer(
        {
          DATABASE_URL: databaseUrl,
          REDIS_URL: base.redis.url,
          REDIS_KEY_PREFIX: prefix,
          LOG_LEVEL: 'warn',
          AUTH_MODE: 'api-key',
          KAFKA_TOPIC_PREFIX: topicPrefix,
          BENCH_SECOND_VERSION: trained.second,
        },
        serverCpus(settings),
      );
      child = started.child;
      const origin = `http://127.0.0.1:${started.port}`;
      // A replica builds the served version's ANN index in the background after loading it; the
      // figures are of a replica past that (the build competes with requests for the cores).
      if (catalog.items.length >= base.retrieval.annMinItems) {
        const builtIn = await indexBuilt(`${origin}/metrics`);
        process.stderr.write(`[bench] ANN index built; waited ${builtIn.toFixed(0)} s\n`);
      }
      const url = `${origin}/graphql`;
      const random = new Random('bench-requests');
      const itemIds = catalog.items.map((item) => item.itemId);
      // Round-robin over the users (in a shuffled order), so the warm-up caches every user vector.
      const order = random.sample(users, users.length);
      // Spread evenly over the order: every 1/share-th user's vector is kept out of the cache.
      const uncached = order.filter(
        (_, i) =>
          Math.floor((i + 1) * settings.uncachedShare) > Math.floor(i * settings.uncachedShare),
      );
      const rankBodies = order.map((user) =>
        JSON.stringify({
          query: RANK,
          variables: {
            u: user,
            c: random.sample(itemIds, settings.candidates).map((itemId) => ({ itemId })),
          },
        }),
      );
      const recommendBodies = order.map((user) =>
        JSON.stringify({ query: RECOMMEND, variables: { u: user } }),
      );
      const trivialBodies = [JSON.stringify({ query: TRIVIAL })];
      for (const body of [trivialBodies[0], rankBodies[0], recommendBodies[0]]) {
        await check(url, headers, body);
      }
      const { connections, warmupSeconds, measureSeconds } = settings;
      // One rank per user: every user vector cached for the version the user is served.
      const rankEveryUser = async () => {
        let warmed = 0;
        await autocannon({
          url,
          method: 'POST',
          headers,
          connections,
          amount: rankBodies.length,
          requests: [
            {
              setupRequest: (request) => {
                request.body = rankBodies[warmed++ % rankBodies.length];
                return request;
              },
            },
          ],
        });
      };
      progress(`warm-up: one rank per user (${users.length}), then ${warmupSeconds} s per query`);
      await rankEveryUser();
      stopEvicting = await evictEvery(
        loadConfig({ ...process.env, REDIS_KEY_PREFIX: prefix }),
        uncached,
      );
      for (const bodies of [trivialBodies, rankBodies, recommendBodies]) {
        await closedLoop(url, headers, bodies, { seconds: warmupSeconds, connections });
      }
      progress(
        `measuring ${measureSeconds} s each; ${uncached.length} of ${order.length} users (${(settings.uncachedShare * 100).toFixed(0)} %) kept uncached`,
      );
      const trivial = await closedLoop(url, headers, trivialBodies, {
        seconds: measureSeconds,
        connections,
      });
      const rank = await closedLoop(url, headers, rankBodies, {
        seconds: measureSeconds,
        connections,
      });
      const recommend = await closedLoop(url, headers, recommendBodies, {
        seconds: measureSeconds,
        connections,
      });
      progress('rank with the ranking skipped (the same HTTP + GraphQL path)');
      const server = child;
      const serverPid = server.pid;
      if (serverPid === undefined) throw new Error('the server has no pid');
      const switchTo = (message: string | RankVariant) =>
        new Promise<void>((done) => {
          server.once('message', () => {
            done();
          });
          server.send(message);
        });
      const gcPauses = () =>
        new Promise<GcPauses>((done) => {
          server.once('message', (reply: GcPausesReply) => {
            done(reply.gcPauses);
          });
          server.send(GC_PAUSES);
        });
      await switchTo(SKIP_RANKING);
      await closedLoop(url, headers, rankBodies, { seconds: warmupSeconds, connections });
      const rankSkipped = await closedLoop(url, headers, rankBodies, {
        seconds: measureSeconds,
        connections,
      });
      await switchTo(REAL_RANKING);
      // A fixed rate compares sittings or code at the same load (the saturated rate moves).
      const halfRate =
        settings.halfRate > 0
          ? settings.halfRate
          : Math.max(1, Math.round(rank.requestsPerSecond / 2));
      generator = OpenLoop.start({ url, headers, bodies: rankBodies });
      const halfRateGenerator = generator;
      machineStalls = watchMachineStalls();
      const heartbeats = machineStalls;
      const redisPid = await redisServerPid(base.redis.url);
      const halfRateLoad: HalfRateLoad = {
        rate: halfRate,
        run: (seconds) => halfRateGenerator.run({ rate: halfRate, seconds }),
      };
      // Each window at half rate: its CPU per request (all the server's threads, and its main
      // thread alone, from /proc), its GC pauses and its latencies; the saturated phase before
      // leaves a queue, drained by the warm-up.
      const halfRateWindow = async (ranking: string) => {
        await switchTo(ranking);
        await halfRateLoad.run(settings.variantWarmupSeconds);
        const counted = await serviceCounts(`${origin}/metrics`);
        await gcPauses();
        const before = cpuSeconds(serverPid);
        const mainBefore = cpuSeconds(serverPid, serverPid);
        const redisWaitBefore = runQueueSeconds(redisPid);
        const from = Date.now();
        const measured = await halfRateLoad.run(measureSeconds);
        const cpuStalls = heartbeats.longestGaps(from, Date.now());
        const cpuProbeMicros = heartbeats.probeMicros(from, Date.now());
        const redisWaitMs = (runQueueSeconds(redisPid) - redisWaitBefore) * 1000;
        const requests = measured.requestsPerSecond * measureSeconds;
        const cpuMicros = ((cpuSeconds(serverPid) - before) / requests) * 1e6;
        const mainThreadCpuMicros =
          ((cpuSeconds(serverPid, serverPid) - mainBefore) / requests) * 1e6;
        const gc = await gcPauses();
        const after = await serviceCounts(`${origin}/metrics`);
        const lookups = after.hit + after.miss - counted.hit - counted.miss;
        return {
          ...measured,
          cpuMicros,
          mainThreadCpuMicros,
          gc,
          cpuStalls,
          cpuProbeMicros,
          redisWaitMs,
          missShare: lookups > 0 ? (after.miss - counted.miss) / lookups : Number.NaN,
          staleShare: requests > 0 ? (after.stale - counted.stale) / requests : Number.NaN,
          inService: insideService(counted, after),
        };
      };
      type HalfRateWindow = Awaited<ReturnType<typeof halfRateWindow>>;
      const halfRateRuns: {
        rank: HalfRateWindow;
        skipped: HalfRateWindow;
        floor?: HalfRateWindow;
      }[] = [];
      for (let run = 1; run <= settings.halfRateRuns; run++) {
        // ABBA: each run's rank and reference are neighbours in time, alternately first; the
        // floor, when measured, is the reference's other neighbour.
        const order = [REAL_RANKING, SKIP_RANKING, ...(settings.floor ? [FLOOR_RANKING] : [])];
        if (run % 2 === 0) order.reverse();
        progress(
          `half rate (${halfRate} req/s, evenly spaced), run ${run}/${settings.halfRateRuns}: ${order.join(', ')}`,
        );
        const windows = new Map<string, HalfRateWindow>();
        for (const ranking of order) windows.set(ranking, await halfRateWindow(ranking));
        const window = (ranking: string) => {
          const measured = windows.get(ranking);
          if (measured === undefined) throw new Error(`no ${ranking} window`);
          return measured;
        };
        halfRateRuns.push({
          rank: window(REAL_RANKING),
          skipped: window(SKIP_RANKING),
          ...(settings.floor ? { floor: window(FLOOR_RANKING) } : {}),
        });
      }
      await switchTo(REAL_RANKING);
      const shareOf = (ranking: HalfRateWindow, skipped: HalfRateWindow) =>
        (ranking.cpuMicros - skipped.cpuMicros) / ranking.cpuMicros;
      const rankingShares = halfRateRuns.map(({ rank: r, skipped }) => shareOf(r, skipped));
      const rankingShare = median(rankingShares);
      const floorShares = halfRateRuns.flatMap(({ floor, skipped }) =>
        floor === undefined ? [] : [shareOf(floor, skipped)],
      );
      const p99Met = halfRateRuns.filter(({ rank: r }) => r.p99Ms < 20).length;
      const stalledRuns = halfRateRuns.flatMap(({ rank: r }, i) =>
        Math.max(...r.cpuStalls) >= STALL_MS ? [i + 1] : [],
      );
      const throughputShare = 1 - rank.requestsPerSecond / rankSkipped.requestsPerSecond;
      const variantTables = await measureVariants(settings, {
        switchTo,
        rankEveryUser,
        halfRateLoad,
        serverPid,
        redisPid,
      });
      const ratio = rank.requestsPerSecond / trivial.requestsPerSecond;
      const skippedRatio = rankSkipped.requestsPerSecond / trivial.requestsPerSecond;
      const row = (name: string, m: Measurement) => ({
        query: name,
        'requests/s': Math.round(m.requestsPerSecond),
        'p50 ms': m.p50Ms,
        'p99 ms': m.p99Ms,
        errors: m.errors,
      });
      const percent = (value: number) => `${(value * 100).toFixed(1)} %`;
      return {
        title: `Ranking API, trained ${TEXT_DIMENSION}-d model: ${settings.items.toLocaleString('en-US')} items, ${settings.candidates} candidates, ${percent(settings.uncachedShare)} of rank users uncached, ${connections} connections, ${measureSeconds} s each after warm-up`,
        rows: [
          row('trivial { health { status } }', trivial),
          row(`rank (${settings.candidates} candidates)`, rank),
          row('recommend(first: 20)', recommend),
          row('rank, ranking skipped (reference)', rankSkipped),
        ],
        tables: [
          {
            title: `rank at half its max rate (${halfRate} req/s, open loop) and the ranking-skipped reference at the same rate, ${settings.halfRateRuns} ABBA runs; CPU = the server's, all threads, per request`,
            rows: halfRateRuns.map(({ rank: r, skipped }, i) => ({
              run: i + 1,
              'rank p50 ms': r.p50Ms,
              'rank p99 ms': r.p99Ms,
              'p99 < 20 ms': r.p99Ms < 20 ? 'yes' : 'no',
              errors: r.errors,
              'cache miss share': percent(r.missShare),
              'stale answers': percent(r.staleShare),
              'rank CPU µs': Math.round(r.cpuMicros),
              'skipped CPU µs': Math.round(skipped.cpuMicros),
              'ranking share': percent(rankingShares[i] ?? Number.NaN),
              'main thread µs, rank / skipped': `${Math.round(r.mainThreadCpuMicros)} / ${Math.round(skipped.mainThreadCpuMicros)}`,
              'rank GC: scavenges, full, longest ms': gcSummary(r.gc),
              'skipped GC': gcSummary(skipped.gc),
              'skipped p99 ms': skipped.p99Ms,
              'generator delay p99 ms': r.generator.delayP99Ms,
              'generator delay max ms, rank / skipped': `${r.generator.delayMaxMs.toFixed(1)} / ${skipped.generator.delayMaxMs.toFixed(1)}`,
              'generator GC, rank / skipped': `${gcSummary(r.generator.gc)} / ${gcSummary(skipped.generator.gc)}`,
              'CPU stall ms per CPU, rank / skipped': `${stallSummary(r.cpuStalls)} / ${stallSummary(skipped.cpuStalls)}`,
              'CPU probe µs per CPU, rank / skipped': `${stallSummary(r.cpuProbeMicros)} / ${stallSummary(skipped.cpuProbeMicros)}`,
              'Redis waiting for a CPU ms, rank / skipped': `${r.redisWaitMs.toFixed(0)} / ${skipped.redisWaitMs.toFixed(0)}`,
            })),
          },
          {
            title: `Inside the service, per rank of the half-rate rank windows: µs of wall time in RankingService.rank and its stages (the server's ranking_*_duration_seconds)`,
            rows: halfRateRuns.map(({ rank: r }, i) => {
              const { total, stages, rest } = r.inService;
              return {
                run: i + 1,
                'in rank()': Math.round(total),
                'id → row': Math.round(stages.item_vectors),
                'user vector': Math.round(stages.user_vector),
                popularity: Math.round(stages.online_state),
                scoring: Math.round(stages.scoring),
                merge: Math.round(stages.merge),
                'rest of rank()': Math.round(rest),
              };
            }),
          },
          ...(settings.floor
            ? [
                {
                  title: `The floor at the same half rate: the least any ranking by the model does (each candidate's row, the model score, the sort; no validation, features, log or metrics), against rank and the reference; CPU = the server's, all threads, per request`,
                  rows: halfRateRuns.map(({ rank: r, skipped, floor }, i) => ({
                    run: i + 1,
                    'rank CPU µs': Math.round(r.cpuMicros),
                    'floor CPU µs': Math.round(floor?.cpuMicros ?? Number.NaN),
                    'skipped CPU µs': Math.round(skipped.cpuMicros),
                    'main thread µs, rank / floor / skipped': `${Math.round(r.mainThreadCpuMicros)} / ${Math.round(floor?.mainThreadCpuMicros ?? Number.NaN)} / ${Math.round(skipped.mainThreadCpuMicros)}`,
                    'ranking share': percent(rankingShares[i] ?? Number.NaN),
                    "floor's share": percent(floorShares[i] ?? Number.NaN),
                    'floor p99 ms': floor?.p99Ms ?? Number.NaN,
                    'floor GC': floor === undefined ? '' : gcSummary(floor.gc),
                  })),
                },
              ]
            : []),
          ...variantTables.tables,
        ],
        figures: {
          settings,
          trainedVersion: trained.served,
          trainSeconds: trained.trainSeconds,
          artifactBytes: trained.artifactBytes,
          trainingOutcome: trained.outcome,
          trivial,
          rank,
          recommend,
          rankRankingSkipped: rankSkipped,
          ratioRankingSkippedOverTrivial: skippedRatio,
          ratioRankOverTrivial: ratio,
          halfRate,
          halfRateRuns,
          halfRateP99MetRuns: p99Met,
          halfRateCpuStalledRuns: stalledRuns,
          rankingShareOfRequestCpu: rankingShare,
          rankingShareOfRequestCpuRuns: rankingShares,
          rankingShareOfRequestThroughput: throughputShare,
          ...(settings.floor
            ? {
                floorShareOfRequestCpu: median(floorShares),
                floorShareOfRequestCpuRuns: floorShares,
              }
            : {}),
          ...variantTables.figures,
          targets: {
            halfRateP99UnderMs: 20,
            halfRateP99RunsNeeded: 4,
            halfRateP99Met: p99Met >= Math.min(4, settings.halfRateRuns),
            rankingShareAtMost: 0.35,
            rankingShareMet: rankingShare <= 0.35,
            ...variantTables.targets,
          },
          loadAverage1mBefore: loadBefore,
        },
        notes: [
          `rank at half its max rate (${halfRate} req/s): p99 < 20 ms in ${p99Met} of ${settings.halfRateRuns} runs (target: at least 4 of 5: ${p99Met >= Math.min(4, settings.halfRateRuns) ? 'met' : 'NOT met'}); p50 ${halfRateRuns.map(({ rank: r }) => r.p50Ms.toFixed(1)).join(' ')} ms, p99 ${halfRateRuns.map(({ rank: r }) => r.p99Ms.toFixed(1)).join(' ')} ms; a CPU stalled ${STALL_MS} ms or more in the rank window of runs: ${stalledRuns.length > 0 ? stalledRuns.join(', ') : 'none'}`,
          `the ranking's share of a rank request (server CPU per request, rank vs ranking skipped at the same rate, median of ${settings.halfRateRuns} runs: ${rankingShares.map(percent).join(' ')}): ${percent(rankingShare)} (target <= 35 %: ${rankingShare <= 0.35 ? 'met' : 'NOT met'}); from saturated throughput (1 - rank / skipped req/s): ${percent(throughputShare)}`,
          `ratio rank/trivial requests/s: ${ratio.toFixed(2)}; reference (ranking skipped) / trivial: ${skippedRatio.toFixed(2)}`,
          ...(settings.floor
            ? [
                `the floor's share (the least any ranking by the model does, against the same reference, median of ${floorShares.length} runs: ${floorShares.map(percent).join(' ')}): ${percent(median(floorShares))}; a ranking path that met the 35 % target would add at most ${percent(Math.max(0, 0.35 - median(floorShares)))} of the request above this floor`,
              ]
            : []),
          ...variantTables.notes,
          `Model: version ${trained.served}, trained by a FULL training run (${settings.trainEpochs} epochs on at most ${settings.trainEvents.toLocaleString('en-US')} events, ${trained.trainSeconds.toFixed(0)} s, gate: ${trained.outcome}) on the seeded events over ${TEXT_DIMENSION}-d text vectors (category direction + noise, under the trainer's encoder id), artifact ${(trained.artifactBytes / 1e6).toFixed(1)} MB in the artifact store, active in the registry; the server loads it like any api replica (item tower over the catalog). Online state rebuilt in Redis from ${events.toLocaleString('en-US')} events of ${settings.users} users.`,
          `Users: ${order.length} users with clicks, round-robin; ${uncached.length} of them (${percent(uncached.length / order.length)}, --uncached-share) have their interest versions bumped every ${EVICT_INTERVAL_MS} ms by the bench (the ingest module's batch script, as an interaction would), so each of their requests runs the user tower (attention over the history) and writes the caches, as a user who just interacted does; "cache miss share" is the server's ranking_cache_requests_total over the window; "stale answers" the share of requests answered with the user's vector from before the bump because the rebuild took longer than RANK_STALE_USER_WAIT_MS (degraded user_vector_stale).`,
          `Server in a child process, compiled to JavaScript as the image runs it (api role, NODE_ENV=production, the image's NODE_OPTIONS=--max-semi-space-size=64 (inherited from npm run bench) and node flags: ${serverNodeArgs().join(' ')}, log level warn, AUTH_MODE=api-key: every request sends a read key; health needs none); the load generators in the bench process, ${settings.pinServer ? 'on CPUs of their own: --pin-server put every server thread on the last CPU and the bench on the others (PostgreSQL, Redis and Kafka on any)' : 'on the same cores'}.`,
          `Half rate: requests evenly spaced (open loop) from a worker thread of the bench process with a heap of its own (the bench's own collections do not stall it), ${settings.variantWarmupSeconds} s at that rate discarded first, latency from each one's scheduled send time; "generator" columns: that thread's event-loop delay and collections, which count in the latencies it measures.`,
          `CPU stalls: a heartbeat process on each CPU (bench/lib/cpu-heartbeat.ts)${heartbeats.realTime ? ' at real-time priority (SCHED_FIFO 99), before anything else on the machine' : ' at normal priority (chrt --fifo was refused, so a gap may also be that CPU busy)'} wakes every millisecond; the longest gap between its wake-ups over the window, per CPU in CPU order${settings.pinServer ? ' (the server on the last)' : ''}. A gap at real-time priority is time the CPU ran nothing of this machine's: on a virtual machine, its host running something else. "CPU probe": every 100 ms the heartbeat times a fixed piece of work (sums over 256 KB), median per CPU over the window: the same instructions taking longer is that CPU running slower, which no gap shows. "Redis waiting for a CPU": the time Redis's main thread was runnable but not running over the window (/proc/<pid>/schedstat).`,
          'Per window: "main thread" is the CPU per request of the server\'s request thread alone (the rest of "CPU": V8\'s GC helper threads and the served-slate log\'s producer thread); GC is the main thread\'s pauses over the window from perf_hooks: scavenges (count and total), full mark-compacts (count and total), the longest single pause.',
          'Inside the service: a request at half rate mostly runs alone, so its wall time in rank() is about its CPU, but for the uncached users\' waits for Redis (in "user vector"). "id → row" is the candidates\' item-table rows; "user vector" the user\'s vector (the replica\'s copy, or Redis and the user tower); "popularity" the candidates\' popularity from the replica\'s copy, after the user\'s vector when that is at hand and during its wait when the vector is rebuilt (then both count the same span; "rest" is that much too small); "rest" is validation, the request state, the served-slate log\'s record, metrics and the answer\'s entries. Run with --uncached-share 0 to leave out the Redis waits.',
          `1-minute load average before the run: ${loadBefore.toFixed(2)}.`,
        ],
      };
    } finally {
      machineStalls?.stop();
      await generator?.close();
      await stopEvicting?.().catch(() => undefined);
      // A disconnect lets the server exit on its own (writing a --cpu-prof profile); then kill.
      const exited =
        child?.connected === true ? new Promise((done) => child?.once('exit', done)) : undefined;
      child?.disconnect();
      await Promise.race([exited, new Promise((done) => setTimeout(done, 5000))]);
      kill();
      process.removeListener('exit', kill);
      await clearRedis(base.redis.url, prefix).catch(() => undefined);
    }
  },
};

/**
 * The variants' cost as the server's CPU time per `rank` (all its threads, the served-slate
 * producer's included) at a fixed rate, medians compared. Saturated throughput swings ±15 %
 * between rounds on 2 shared cores; CPU per request at a steady rate is what a variant adds,
 * and capacity is its inverse. Skipped with `--variant-rounds 0 --experiment-pairs 0`.
 */
async function measureVariants(
  settings: Settings,
  server: {
    switchTo(variant: RankVariant): Promise<void>;
    rankEveryUser(): Promise<void>;
    halfRateLoad: HalfRateLoad;
    serverPid: number;
    /** Redis's server process on this machine (its CPU per rank read from /proc). */
    redisPid: number;
  },
) {
  const { halfRateLoad } = server;
  const asServed: RankVariant = {
    combiner: false,
    servedLog: true,
    experiment: false,
    localCopy: true,
  };
  const variants: Record<VariantName, RankVariant> = {
    hand: asServed,
    combiner: { ...asServed, combiner: true },
    logOff: { ...asServed, servedLog: false },
    noExperiment: asServed,
    experiment: { ...asServed, experiment: true },
    copyOn: asServed,
    copyOff: { ...asServed, localCopy: false },
  };
  const cpuPerRank = perVariant();
  const redisCpuPerRank = perVariant();
  const p99Ms = perVariant();
  // Every switch is followed by one rank per user: a switch into or out of the experiment
  // moves half the users to another version, whose interest vectors are not cached yet.
  const measureVariant = async (name: VariantName) => {
    await server.switchTo(variants[name]);
    await server.rankEveryUser();
    await halfRateLoad.run(settings.variantWarmupSeconds);
    const before = cpuSeconds(server.serverPid);
    const redisBefore = cpuSeconds(server.redisPid);
    const measured = await halfRateLoad.run(settings.variantSeconds);
    const requests = measured.requestsPerSecond * settings.variantSeconds;
    cpuPerRank[name].push(((cpuSeconds(server.serverPid) - before) / requests) * 1e6);
    redisCpuPerRank[name].push(((cpuSeconds(server.redisPid) - redisBefore) / requests) * 1e6);
    p99Ms[name].push(measured.p99Ms);
  };
  const threeVariants: VariantName[] = ['hand', 'combiner', 'logOff'];
  for (let round = 1; round <= settings.variantRounds; round++) {
    // Each round starts one variant later, so no variant is always measured first.
    const order = threeVariants.map((_, i) => threeVariants[(i + round - 1) % 3]);
    progress(
      `variants at ${halfRateLoad.rate} req/s, round ${round}/${settings.variantRounds}: ${order.join(', ')}`,
    );
    for (const name of order) await measureVariant(name);
  }
  // The experiment against none in ABBA pairs: each follows itself and the other equally
  // often, so what a start or a stop leaves behind (a dropped version's garbage) is shared.
  // Each pair's ratio compares neighbours in time; their median resists the bursts in which
  // these shared cores run a whole window 40 % slower.
  for (let pair = 1; pair <= settings.experimentPairs; pair++) {
    const order: VariantName[] =
      pair % 2 === 1 ? ['noExperiment', 'experiment'] : ['experiment', 'noExperiment'];
    progress(
      `experiment at ${halfRateLoad.rate} req/s, pair ${pair}/${settings.experimentPairs}: ${order.join(', ')}`,
    );
    for (const name of order) await measureVariant(name);
  }
  // The replica's copy of interest vectors against every rank reading Redis, in ABBA pairs.
  for (let pair = 1; pair <= settings.copyPairs; pair++) {
    const order: VariantName[] = pair % 2 === 1 ? ['copyOn', 'copyOff'] : ['copyOff', 'copyOn'];
    progress(
      `replica copy of interest vectors at ${halfRateLoad.rate} req/s, pair ${pair}/${settings.copyPairs}: ${order.join(', ')}`,
    );
    for (const name of order) await measureVariant(name);
  }
  await server.switchTo(variants.hand);
  const measured = VARIANT_NAMES.filter((name) => cpuPerRank[name].length > 0);
  if (measured.length === 0) return { tables: [], figures: {}, targets: {}, notes: [] };
  const cpu = Object.fromEntries(measured.map((name) => [name, median(cpuPerRank[name])]));
  const notes: string[] = [];
  const targets: Record<string, number | boolean> = {};
  const figures: Record<string, unknown> = {
    cpuMicrosPerRank: cpu,
    cpuMicrosPerRankRounds: cpuPerRank,
    p99MsRounds: p99Ms,
    redisCpuMicrosPerRankRounds: redisCpuPerRank,
  };
  if (settings.variantRounds > 0) {
    // Capacity ratios: the same cores serve 1 / (CPU per request) requests.
    const combinerRatio = median(cpuPerRank.hand) / median(cpuPerRank.combiner);
    const logRatio = median(cpuPerRank.logOff) / median(cpuPerRank.hand);
    Object.assign(figures, { ratioCombinerOverHand: combinerRatio, ratioLogOnOverOff: logRatio });
    Object.assign(targets, {
      combinerRatioAtLeast: 0.9,
      combinerRatioMet: combinerRatio >= 0.9,
      logRatioAtLeast: 0.95,
      logRatioMet: logRatio >= 0.95,
    });
    notes.push(
      `capacity ratio learned combiner / hand weights (CPU per rank, inverted): ${combinerRatio.toFixed(3)} (target >= 0.9: ${combinerRatio >= 0.9 ? 'met' : 'NOT met'})`,
      `capacity ratio served-slate log on / off (CPU per rank, inverted): ${logRatio.toFixed(3)} (target >= 0.95, i.e. the log costs < 5 %: ${logRatio >= 0.95 ? 'met' : 'NOT met'}); log on = slates sent to rank.served on the running broker`,
    );
  }
  if (settings.experimentPairs > 0) {
    const pairRatios = cpuPerRank.experiment.map(
      (experiment, i) => (cpuPerRank.noExperiment[i] ?? Number.NaN) / experiment,
    );
    const experimentRatio = median(pairRatios);
    Object.assign(figures, {
      ratioExperimentOverNone: experimentRatio,
      experimentPairRatios: pairRatios,
    });
    Object.assign(targets, {
      experimentRatioAtLeast: 0.95,
      experimentRatioMet: experimentRatio >= 0.95,
    });
    notes.push(
      `capacity ratio experiment running / none (CPU per rank, inverted; median of the ${settings.experimentPairs} pairs' ratios: ${pairRatios.map((r) => r.toFixed(2)).join(' ')}): ${experimentRatio.toFixed(3)} (target >= 0.95, i.e. within 5 %: ${experimentRatio >= 0.95 ? 'met' : 'NOT met'}); experiment = a running 50/50 experiment of the served version against a second version (the same artifact under its own id, loaded like any version), each request assigned, counted and logged with its arm; each start loads the second version anew and builds its ANN index, a one-off printed as "experiment started" above and waited for before the window`,
    );
  }
  if (settings.copyPairs > 0) {
    const pairRatios = cpuPerRank.copyOn.map((on, i) => (cpuPerRank.copyOff[i] ?? Number.NaN) / on);
    const copyRatio = median(pairRatios);
    Object.assign(figures, { ratioCopyOnOverOff: copyRatio, copyPairRatios: pairRatios });
    notes.push(
      `capacity ratio with / without the replica's copy of users' interest vectors (CPU per rank, inverted; median of the ${settings.copyPairs} pairs' ratios: ${pairRatios.map((r) => r.toFixed(2)).join(' ')}): ${copyRatio.toFixed(3)}; p99 ms with ${p99Ms.copyOn.map((v) => v.toFixed(1)).join(' ')}, without ${p99Ms.copyOff.map((v) => v.toFixed(1)).join(' ')}`,
    );
  }
  return {
    tables: [
      {
        title: `Server CPU per rank at ${halfRateLoad.rate} req/s (all threads; medians: the first three of ${settings.variantRounds} rounds in rotating order, the experiment of ${settings.experimentPairs} and the replica copy of ${settings.copyPairs} ABBA pairs)`,
        rows: measured.map((name) => ({
          variant: VARIANT_LABELS[name],
          'CPU µs per rank': Math.round(cpu[name] ?? Number.NaN),
          rounds: cpuPerRank[name].map((value) => Math.round(value)).join(' '),
          'Redis CPU µs per rank': Math.round(median(redisCpuPerRank[name])),
          'p99 ms': p99Ms[name].map((value) => value.toFixed(1)).join(' '),
        })),
      },
    ],
    figures,
    targets,
    notes,
  };
}

export default benchmark;
