import { ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { Client } from 'pg';
import { createClient } from 'redis';
import { createLogger } from '../src/common/logger';
import { Kafka, logLevel } from 'kafkajs';
import { AppConfig, loadConfig } from '../src/config/config';
import { SERVED_LOG_TOPICS } from '../src/modules/served-log/served-slate.codec';
import { ensureDatabase, migrate } from '../src/infra/migrator';
import { generateBehaviour, generateCatalog, Random } from '../src/synthetic';
import { createBenchApiKey } from './lib/api-key';
import { Benchmark, progress, integerFlag } from './lib/harness';
import { openLoop } from './lib/open-loop';
import { RankVariant, REAL_RANKING, SKIP_RANKING } from './servers/common';
import type { ServerReady } from './servers/common';

const STARTUP_TIMEOUT_MS = 300_000;
const TRIVIAL = '{ health { status } }';
const RANK = `query Rank($u: ID!, $c: [CandidateInput!]!) {
  rank(userId: $u, candidates: $c) { items { itemId score } modelVersion requestId } }`;
const RECOMMEND = `query Recommend($u: ID!) {
  recommend(userId: $u, first: 20) { items { itemId score } modelVersion requestId } }`;

interface Settings {
  readonly items: number;
  readonly users: number;
  readonly impressions: number;
  readonly dimension: number;
  readonly candidates: number;
  readonly warmupSeconds: number;
  readonly measureSeconds: number;
  readonly connections: number;
  /** Rounds of the rank variants at half rate (hand, combiner, log off; experiment pairs). */
  readonly variantRounds: number;
  /** ABBA pairs of as served without and with a running experiment. */
  readonly experimentPairs: number;
  readonly variantWarmupSeconds: number;
  readonly variantSeconds: number;
}

function parseSettings(args: readonly string[]): Settings {
  const value = (flag: string, fallback: number): number => integerFlag(args, flag, fallback, 0);
  return {
    items: value('items', 50_000),
    users: value('users', 2000),
    impressions: value('impressions', 200_000),
    dimension: value('dimension', 64),
    candidates: value('candidates', 100),
    warmupSeconds: value('warmup', 5),
    measureSeconds: value('measure', 10),
    connections: value('connections', 32),
    variantRounds: value('variant-rounds', 4),
    experimentPairs: value('experiment-pairs', 8),
    variantWarmupSeconds: value('variant-warmup', 3),
    variantSeconds: value('variant-seconds', 6),
  };
}

interface Measurement {
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

const DATABASE = 'recsys_bench_ranking';

type VariantName = 'hand' | 'combiner' | 'logOff' | 'noExperiment' | 'experiment';
const VARIANT_NAMES: readonly VariantName[] = [
  'hand',
  'combiner',
  'logOff',
  'noExperiment',
  'experiment',
];
const VARIANT_LABELS: Record<VariantName, string> = {
  hand: 'hand weights, served-slate log on (as served)',
  combiner: 'learned combiner, log on',
  logOff: 'hand weights, log off',
  noExperiment: 'as served, paired with the experiment (no experiment)',
  experiment: 'as served, experiment running (2 versions, 50/50)',
};

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.at(Math.floor(sorted.length / 2));
  if (middle === undefined) throw new Error('no measurement');
  return middle;
}

/** User + system CPU seconds of a process, all its threads (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** Linux's USER_HZ on every architecture Node runs on. */
const CLOCK_TICKS_PER_SECOND = 100;
const SEED = 'bench-ranking';

/** Fresh database with the catalog and behaviour (the last 7 days, so popularity is live). */
async function seed(settings: Settings, databaseUrl: string) {
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
  await client.end();
  await ensureDatabase(databaseUrl);
  await migrate(databaseUrl, createLogger('warn'));
  const catalog = generateCatalog({ items: settings.items, seed: SEED });
  const to = new Date();
  const behaviour = generateBehaviour({
    catalog,
    users: settings.users,
    impressions: settings.impressions,
    seed: SEED,
    from: new Date(to.getTime() - 7 * 86_400_000),
    to,
  });
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    for (let i = 0; i < catalog.items.length; i += 10_000) {
      const chunk = catalog.items.slice(i, i + 10_000);
      await db.query(
        `INSERT INTO items (item_id, title, description, category, tags, price, created_at, source_ts, text_hash, embed_pending)
         SELECT u.id, u.title, u.description, u.category, '{}', u.price, u.created_at, now(), 'bench', false
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::timestamptz[])
           AS u(id, title, description, category, price, created_at)`,
        [
          chunk.map((item) => item.itemId),
          chunk.map((item) => item.title),
          chunk.map((item) => item.description),
          chunk.map((item) => item.category),
          chunk.map((item) => item.price),
          chunk.map((item) => item.createdAt),
        ],
      );
    }
    for (let i = 0; i < behaviour.events.length; i += 20_000) {
      const chunk = behaviour.events.slice(i, i + 20_000);
      await db.query(
        `INSERT INTO events (event_id, type, user_id, item_id, ts)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])`,
        [
          chunk.map((event) => event.eventId),
          chunk.map((event) => event.type),
          chunk.map((event) => event.userId),
          chunk.map((event) => event.itemId),
          chunk.map((event) => event.timestamp),
        ],
      );
    }
  } finally {
    await db.end();
  }
  const active = new Set(
    behaviour.events.filter((event) => event.type !== 'impression').map((event) => event.userId),
  );
  return { catalog, users: [...active], events: behaviour.events.length };
}

async function clearRedis(url: string, prefix: string): Promise<void> {
  const redis = createClient({ url });
  await redis.connect();
  for await (const keys of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
    if (keys.length > 0) await redis.unlink(keys);
  }
  await redis.close();
}

async function startServer(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(path.join(__dirname, 'servers', 'ranking.ts'), [], {
    // BENCH_SERVER_NODE_ARGS: extra node flags for the server, e.g. `--cpu-prof` to profile it.
    execArgv: [
      '-r',
      'ts-node/register',
      ...(process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ],
    env: { ...process.env, ...env, NODE_ENV: 'production' },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
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

async function load(
  url: string,
  headers: Record<string, string>,
  bodies: readonly string[],
  seconds: number,
  connections: number,
): Promise<Measurement> {
  let next = 0;
  const result = await autocannon({
    url,
    method: 'POST',
    headers,
    connections,
    duration: seconds,
    requests: [
      {
        setupRequest: (request) => {
          request.body = bodies[next++ % bodies.length];
          return request;
        },
      },
    ],
  });
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.non2xx + result.timeouts,
  };
}

async function createServedTopic(config: AppConfig, topicPrefix: string): Promise<void> {
  const kafka = new Kafka({
    clientId: 'bench-ranking',
    brokers: [...config.kafka.brokers],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic: `${topicPrefix}${SERVED_LOG_TOPICS.slates}`, numPartitions: 6 }],
      waitForLeaders: true,
    });
  } catch (error) {
    throw new Error(
      `no Kafka broker at ${config.kafka.brokers.join(',')} (start one: npm run stack): ${String(error)}`,
    );
  } finally {
    await admin.disconnect();
  }
}

const benchmark: Benchmark = {
  description:
    'rank (100 candidates) and recommend(first: 20) vs a trivial query, 50,000-item catalog, one server',
  async run(args) {
    const settings = parseSettings(args);
    const base = loadConfig(process.env);
    const admin = new URL(base.postgres.url);
    admin.pathname = `/${DATABASE}`;
    const databaseUrl = admin.toString();
    const prefix = `bench:ranking:${process.pid}:`;
    progress(`seeding ${settings.items} items, ${settings.users} users into ${DATABASE}`);
    const { catalog, users, events } = await seed(settings, databaseUrl);
    // Measured with authentication on, as served: every request carries a read key.
    const headers = {
      'content-type': 'application/json',
      'x-api-key': await createBenchApiKey(databaseUrl, 'read'),
    };
    // The served-slate log sends every answer to rank.served: measured against a real broker.
    const topicPrefix = `bench-ranking-${process.pid}-`;
    await createServedTopic(base, topicPrefix);
    progress(`${events} events; starting the server (online-state rebuild, model load)`);
    let child: ChildProcess | undefined;
    const kill = () => child?.kill('SIGKILL');
    process.once('exit', kill);
    const loadBefore = loadavg()[0] ?? 0;
    try {
      const started = await startServer({
        DATABASE_URL: databaseUrl,
        REDIS_URL: base.redis.url,
        REDIS_KEY_PREFIX: prefix,
        LOG_LEVEL: 'warn',
        AUTH_MODE: 'api-key',
        BENCH_ITEMS: String(settings.items),
        BENCH_SEED: SEED,
        BENCH_DIMENSION: String(settings.dimension),
        KAFKA_TOPIC_PREFIX: topicPrefix,
      });
      child = started.child;
      const url = `http://127.0.0.1:${started.port}/graphql`;
      const random = new Random('bench-requests');
      const itemIds = catalog.items.map((item) => item.itemId);
      // Round-robin over the users (in a shuffled order), so the warm-up caches every user vector.
      const order = random.sample(users, users.length);
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
      for (const bodies of [trivialBodies, rankBodies, recommendBodies]) {
        await load(url, headers, bodies, warmupSeconds, connections);
      }
      progress(`measuring ${measureSeconds} s each`);
      const trivial = await load(url, headers, trivialBodies, measureSeconds, connections);
      const rank = await load(url, headers, rankBodies, measureSeconds, connections);
      const recommend = await load(url, headers, recommendBodies, measureSeconds, connections);
      progress('rank with the ranking skipped (the same HTTP + GraphQL path)');
      const server = child;
      const switchTo = (message: string | RankVariant) =>
        new Promise<void>((done) => {
          server.once('message', () => {
            done();
          });
          server.send(message);
        });
      await switchTo(SKIP_RANKING);
      await load(url, headers, rankBodies, warmupSeconds, connections);
      const rankSkipped = await load(url, headers, rankBodies, measureSeconds, connections);
      await switchTo(REAL_RANKING);
      const halfRate = Math.max(1, Math.round(rank.requestsPerSecond / 2));
      progress(`rank at half its max rate (${halfRate} req/s, evenly spaced)`);
      // Steady state only: the saturated phase before leaves a queue behind, drained here.
      const halfRateLoad = { url, headers, bodies: rankBodies, rate: halfRate };
      await openLoop({ ...halfRateLoad, seconds: warmupSeconds });
      const rankHalf = await openLoop({ ...halfRateLoad, seconds: measureSeconds });
      // The variants' cost as the server's CPU time per `rank` (all its threads, the served-slate
      // producer's included) at a fixed rate, medians compared. Saturated throughput swings ±15 %
      // between rounds on 2 shared cores; CPU per request at a steady rate is what a variant adds,
      // and capacity is its inverse.
      const asServed: RankVariant = { combiner: false, servedLog: true, experiment: false };
      const variants: Record<VariantName, RankVariant> = {
        hand: asServed,
        combiner: { ...asServed, combiner: true },
        logOff: { ...asServed, servedLog: false },
        noExperiment: asServed,
        experiment: { ...asServed, experiment: true },
      };
      const cpuPerRank: Record<VariantName, number[]> = {
        hand: [],
        combiner: [],
        logOff: [],
        noExperiment: [],
        experiment: [],
      };
      const serverPid = server.pid;
      if (serverPid === undefined) throw new Error('the server has no pid');
      // Every switch is followed by one rank per user: a switch into or out of the experiment
      // moves half the users to another version, whose interest vectors are not cached yet.
      const measureVariant = async (name: VariantName) => {
        await switchTo(variants[name]);
        await rankEveryUser();
        await openLoop({ ...halfRateLoad, seconds: settings.variantWarmupSeconds });
        const before = cpuSeconds(serverPid);
        const measured = await openLoop({ ...halfRateLoad, seconds: settings.variantSeconds });
        const requests = measured.requestsPerSecond * settings.variantSeconds;
        cpuPerRank[name].push(((cpuSeconds(serverPid) - before) / requests) * 1e6);
      };
      const threeVariants: VariantName[] = ['hand', 'combiner', 'logOff'];
      for (let round = 1; round <= settings.variantRounds; round++) {
        // Each round starts one variant later, so no variant is always measured first.
        const order = threeVariants.map((_, i) => threeVariants[(i + round - 1) % 3]);
        progress(
          `variants at ${halfRate} req/s, round ${round}/${settings.variantRounds}: ${order.join(', ')}`,
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
          `experiment at ${halfRate} req/s, pair ${pair}/${settings.experimentPairs}: ${order.join(', ')}`,
        );
        for (const name of order) await measureVariant(name);
      }
      const experimentPairRatios = cpuPerRank.experiment.map(
        (experiment, i) => cpuPerRank.noExperiment[i] / experiment,
      );
      await switchTo(variants.hand);
      const cpu = {
        hand: median(cpuPerRank.hand),
        combiner: median(cpuPerRank.combiner),
        logOff: median(cpuPerRank.logOff),
        noExperiment: median(cpuPerRank.noExperiment),
        experiment: median(cpuPerRank.experiment),
      };
      // Capacity ratios: the same cores serve 1 / (CPU per request) requests.
      const combinerRatio = cpu.hand / cpu.combiner;
      const logRatio = cpu.logOff / cpu.hand;
      const experimentRatio = median(experimentPairRatios);
      const ratio = rank.requestsPerSecond / trivial.requestsPerSecond;
      const skippedRatio = rankSkipped.requestsPerSecond / trivial.requestsPerSecond;
      const row = (name: string, m: Measurement) => ({
        query: name,
        'requests/s': Math.round(m.requestsPerSecond),
        'p50 ms': m.p50Ms,
        'p99 ms': m.p99Ms,
        errors: m.errors,
      });
      return {
        title: `Ranking API: ${settings.items.toLocaleString('en-US')} items, ${settings.candidates} candidates, ${connections} connections, ${measureSeconds} s each after warm-up`,
        rows: [
          row('trivial { health { status } }', trivial),
          row(`rank (${settings.candidates} candidates)`, rank),
          row('recommend(first: 20)', recommend),
          row('rank, ranking skipped (reference)', rankSkipped),
          row(`rank at ${halfRate} req/s (half max)`, rankHalf),
        ],
        tables: [
          {
            title: `Server CPU per rank at ${halfRate} req/s (all threads; medians: the first three of ${settings.variantRounds} rounds in rotating order, the experiment of ${settings.experimentPairs} ABBA pairs)`,
            rows: VARIANT_NAMES.map((name) => ({
              variant: VARIANT_LABELS[name],
              'CPU µs per rank': Math.round(cpu[name]),
              rounds: cpuPerRank[name].map((value) => Math.round(value)).join(' '),
            })),
          },
        ],
        figures: {
          settings,
          trivial,
          rank,
          recommend,
          rankRankingSkipped: rankSkipped,
          ratioRankingSkippedOverTrivial: skippedRatio,
          rankAtHalfRate: { rate: halfRate, ...rankHalf },
          ratioRankOverTrivial: ratio,
          cpuMicrosPerRank: cpu,
          cpuMicrosPerRankRounds: cpuPerRank,
          ratioCombinerOverHand: combinerRatio,
          ratioLogOnOverOff: logRatio,
          ratioExperimentOverNone: experimentRatio,
          experimentPairRatios,
          targets: {
            combinerRatioAtLeast: 0.9,
            combinerRatioMet: combinerRatio >= 0.9,
            logRatioAtLeast: 0.95,
            logRatioMet: logRatio >= 0.95,
            experimentRatioAtLeast: 0.95,
            experimentRatioMet: experimentRatio >= 0.95,
            ratioAtLeast: 0.5,
            ratioMet: ratio >= 0.5,
            halfRateP99UnderMs: 20,
            halfRateP99Met: rankHalf.p99Ms < 20,
          },
          loadAverage1mBefore: loadBefore,
        },
        notes: [
          `ratio rank/trivial requests/s: ${ratio.toFixed(2)} (target >= 0.5: ${ratio >= 0.5 ? 'met' : 'NOT met'})`,
          `capacity ratio learned combiner / hand weights (CPU per rank, inverted): ${combinerRatio.toFixed(3)} (target >= 0.9: ${combinerRatio >= 0.9 ? 'met' : 'NOT met'})`,
          `capacity ratio served-slate log on / off (CPU per rank, inverted): ${logRatio.toFixed(3)} (target >= 0.95, i.e. the log costs < 5 %: ${logRatio >= 0.95 ? 'met' : 'NOT met'}); log on = slates sent to rank.served on the running broker`,
          `capacity ratio experiment running / none (CPU per rank, inverted; median of the ${settings.experimentPairs} pairs' ratios: ${experimentPairRatios.map((r) => r.toFixed(2)).join(' ')}): ${experimentRatio.toFixed(3)} (target >= 0.95, i.e. within 5 %: ${experimentRatio >= 0.95 ? 'met' : 'NOT met'}); experiment = a running 50/50 experiment of the served version against a second one, both loaded, each request assigned, counted and logged with its arm`,
          `reference: rank with the ranking skipped (same request, answered through the same HTTP + GraphQL path with the candidates in their order) / trivial: ${skippedRatio.toFixed(2)}; the ranking itself has to fit in what is left between that and 0.5`,
          `p99 of rank at half its max rate: ${rankHalf.p99Ms.toFixed(1)} ms (target < 20 ms: ${rankHalf.p99Ms < 20 ? 'met' : 'NOT met'}); the generator's own event-loop delay meanwhile: p99 ${rankHalf.generatorDelayP99Ms.toFixed(1)} ms, max ${rankHalf.generatorDelayMaxMs.toFixed(1)} ms`,
          `Model: the in-memory category model (dimension ${settings.dimension}) stands in for the trained scorer; online state rebuilt in Redis from ${events.toLocaleString('en-US')} events of ${settings.users} users.`,
          'Queries select items { itemId score }, modelVersion and requestId; rank users are random users with clicks (warm user-vector cache).',
          "Server in a child process (api role, NODE_ENV=production and the image's NODE_OPTIONS=--max-semi-space-size=64 (inherited from npm run bench), log level warn, AUTH_MODE=api-key: every request sends a read key; `health` needs none); autocannon in the bench process on the same cores.",
          `Half rate: requests evenly spaced (open loop), ${warmupSeconds} s at that rate discarded first (the saturated phase before leaves a queue), latency from each one's scheduled send time; autocannon's overallRate sends each second's quota in a burst, which measures that burst's queue instead.`,
          `1-minute load average before the run: ${loadBefore.toFixed(2)}.`,
        ],
      };
    } finally {
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

export default benchmark;
