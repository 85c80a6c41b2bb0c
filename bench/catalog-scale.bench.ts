import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { loadConfig } from '../src/config/config';
import { Random } from '../src/synthetic';
import { freePort } from '../test/support/processes';
import { createBenchApiKey } from './lib/api-key';
import { createServedTopic, deleteServedTopic } from './lib/served-topic';
import {
  clearRedis,
  databaseUrlFor,
  dropDatabase,
  seedCatalogAndWeek,
  storedIndexBytes,
  storedIndexes,
} from './lib/bench-store';
import type { StoredIndexQuality } from './lib/bench-store';
import { compiled } from './lib/built-servers';
import { closedLoop } from './lib/closed-loop';
import { BULK_READER_IDLE_MS } from '../src/infra/pg-bulk-reader';
import { CATALOG_THREAD_IDLE_MS } from '../src/modules/serving/catalog-adapter';
import { Benchmark, integerFlag, progress } from './lib/harness';
import { percentile } from './lib/percentile';
import { graphql, startRole, waitReady, stopProcess } from './lib/roles';
import { TEXT_DIMENSION, trainServedVersion } from './lib/trained-model';
import { rssBytes } from './servers/recommend';

/** Own database per run: concurrent runs must not drop each other's. */
const DATABASE = `recsys_bench_scale_${String(process.pid)}`;
const SEED = 'bench-scale';
const INDEX_WAIT_MS = 3 * 3_600_000;
const RANK = `query Rank($u: ID!, $c: [CandidateInput!]!) {
  rank(userId: $u, candidates: $c) { modelVersion items { itemId } } }`;
const RECOMMEND = `query Recommend($u: ID!) {
  recommend(userId: $u, first: 20) { modelVersion items { itemId } } }`;
const SERVING = '{ servingModel { versionId recommendVersionId } }';

interface Settings {
  readonly items: number;
  readonly users: number;
  readonly impressions: number;
  /** Sequential rank and recommend calls per phase (latency and the version that answered). */
  readonly probes: number;
  /** Seconds of closed-loop recommend load per phase, and its connections. */
  readonly loadSeconds: number;
  readonly connections: number;
  /** 1: also wait for the second version's index and measure recommend on it. */
  readonly waitSecondIndex: number;
  /** 1: once the first index is stored, start a second api process and time its index's open. */
  readonly secondReplica: number;
  /**
   * 1: then start a train role process, train a version there and time its index built ahead
   * (in the train process) until the api serves `recommend` through it.
   */
  readonly builtAhead: number;
  /**
   * Then this many more activations, round the versions whose indexes are stored, each waited
   * for until `recommend` answers through that version's index: the api's memory from swap to
   * swap (does what a version held come back when it goes?).
   */
  readonly swaps: number;
}

function parseSettings(args: readonly string[]): Settings {
  const value = (flag: string, fallback: number, min = 1): number =>
    integerFlag(args, flag, fallback, min);
  return {
    items: value('items', 1_000_000),
    users: value('users', 1000),
    impressions: value('impressions', 40_000),
    probes: value('probes', 50),
    loadSeconds: value('load-seconds', 15),
    connections: value('connections', 8),
    waitSecondIndex: value('wait-second-index', 0, 0),
    secondReplica: value('second-replica', 1, 0),
    builtAhead: value('built-ahead', 1, 0),
    swaps: value('swaps', 0, 0),
  };
}

interface Serving {
  readonly versionId: string | null;
  readonly recommendVersionId: string | null;
}

/** The largest resident set of a process per phase, sampled every second. */
class RssPeaks {
  private readonly peaks = new Map<string, number>();
  private phase = 'boot';
  private readonly timer: NodeJS.Timeout;

  constructor(pid: number) {
    this.timer = setInterval(() => {
      const rss = rssBytes(pid);
      this.peaks.set(this.phase, Math.max(this.peaks.get(this.phase) ?? 0, rss));
    }, 1000);
  }

  enter(phase: string): void {
    this.phase = phase;
  }

  peakGiB(phase: string): number {
    return Number(((this.peaks.get(phase) ?? 0) / 2 ** 30).toFixed(2));
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/** "version 3: adopted from version 1's graph, sampled recall@20 0.953 (0.962 when built)". */
function describeIndex(index: StoredIndexQuality): string {
  const recall = (value: number | null) => (value === null ? 'unknown' : value.toFixed(3));
  const how =
    index.adoptedFrom === null
      ? 'built'
      : `adopted from version ${index.adoptedFrom}'s graph (that graph's fresh build: ${recall(index.graphRecall)})`;
  return `version ${index.versionId}: ${how}, sampled recall@20 ${recall(index.recall)}`;
}

/** What the versions answering `calls` were: "3" or "3: 40, 4: 10". */
function versionsOf(answered: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const version of answered) counts.set(version, (counts.get(version) ?? 0) + 1);
  if (counts.size === 1) return [...counts.keys()].join('');
  return [...counts].map(([version, count]) => `${version}: ${String(count)}`).join(', ');
}

interface SecondReplica {
  readonly bootSeconds: number;
  /** From listening until its index (opened from the store) served. */
  readonly openSeconds: number;
  readonly peakRssGiB: number;
}

/**
 * Starts another api process on the same database (the version's index stored) and times it
 * until it serves through that index; stops it.
 */
async function secondReplica(
  env: NodeJS.ProcessEnv,
  waitFor: (what: string, done: () => Promise<boolean>, everyMs: number) => Promise<number>,
  indexed: (port: number) => Promise<boolean>,
): Promise<SecondReplica> {
  progress('starting a second api process: it should open the stored index, not build one');
  const spawnedAt = performance.now();
  const replica = startRole('api-2', 'api', await freePort(), env);
  if (replica.child.pid === undefined) throw new Error('the second api process has no pid');
  const rss = new RssPeaks(replica.child.pid);
  try {
    await waitReady(replica);
    const bootSeconds = (performance.now() - spawnedAt) / 1000;
    const openSeconds = await waitFor('opened index', () => indexed(replica.port), 1000);
    return { bootSeconds, openSeconds, peakRssGiB: rss.peakGiB('boot') };
  } finally {
    rss.stop();
    await stopProcess(replica.child);
  }
}

interface BuiltAhead {
  readonly versionId: string;
  readonly outcome: string;
  /** Queued → the run succeeded (training and registration). */
  readonly runSeconds: number;
  /** Registration → its index stored by the train process (load, build, store). */
  readonly aheadSeconds: number;
  readonly storedBytes: number;
  /** The version whose stored graph it adopted; null: built. */
  readonly adoptedFrom: string | null;
  /** Activation (at registration when the gate promoted it) → `recommend` through its index. */
  readonly activationToIndexSeconds: number;
  /** Of that, after the index was stored: the replica opening it. */
  readonly openSeconds: number;
  readonly trainPeakRssGiB: number;
  /** The train process once its load's threads have ended after the build: what it holds between builds. */
  readonly trainRestRssGiB: number;
}

interface Api {
  readonly endpoint: string;
  readonly opsKey: string;
  readonly serving: () => Promise<Serving>;
  readonly waitFor: (
    what: string,
    done: () => Promise<boolean>,
    everyMs: number,
  ) => Promise<number>;
}

/** Activates `versionId` through the api, as ops do. */
async function activate(api: Pick<Api, 'endpoint' | 'opsKey'>, versionId: string): Promise<void> {
  await graphql(
    api.endpoint,
    api.opsKey,
    'mutation($id: ID!) { activateModelVersion(id: $id) { id } }',
    { id: versionId },
  );
}

/**
 * Starts the train role in a process of its own and has it train a version (a FULL run queued
 * through the api): it registers the version and builds and stores its index ahead. Times the
 * run, the build ahead, and the api until it serves `recommend` through that index (activating
 * the version once stored, when the gate left it a candidate); stops the train process.
 */
async function builtAhead(env: NodeJS.ProcessEnv, api: Api): Promise<BuiltAhead> {
  const { endpoint, opsKey, serving, waitFor } = api;
  progress('starting the train role: a FULL run there registers a version and builds its index');
  const trainer = startRole('train', 'train', await freePort(), env);
  if (trainer.child.pid === undefined) throw new Error('the train process has no pid');
  const rss = new RssPeaks(trainer.child.pid);
  try {
    await waitReady(trainer);
    const queuedAt = performance.now();
    const { trainModel } = await graphql<{ trainModel: { id: string } }>(
      endpoint,
      opsKey,
      'mutation { trainModel(mode: FULL) { id } }',
    );
    let run: { status: string; outcome: string | null; versionId: string | null } | undefined;
    await waitFor(
      'training run',
      async () => {
        ({ trainingRun: run } = await graphql<{ trainingRun: NonNullable<typeof run> }>(
          endpoint,
          opsKey,
          'query($id: ID!) { trainingRun(id: $id) { status outcome versionId } }',
          { id: trainModel.id },
        ));
        return run.status === 'SUCCEEDED' || run.status === 'FAILED';
      },
      1000,
    );
    if (run?.status !== 'SUCCEEDED' || run.versionId === null) {
      throw new Error(`the train role's run ended ${JSON.stringify(run)}`);
    }
    const registeredAt = performance.now();
    const versionId = run.versionId;
    const outcome = run.outcome ?? 'none';
    progress(`version ${versionId} registered (${outcome}); waiting for its index built ahead`);
    const aheadSeconds = await waitFor(
      'index built ahead',
      async () => (await storedIndexBytes(env.DATABASE_URL ?? '', versionId)) !== undefined,
      1000,
    );
    const storedAt = performance.now();
    if ((await serving()).versionId !== versionId) {
      await activate(api, versionId);
    }
    const activatedAt = outcome === 'promoted' ? registeredAt : storedAt;
    await waitFor(
      'recommend through the index built ahead',
      async () => (await serving()).recommendVersionId === versionId,
      500,
    );
    const servedAt = performance.now();
    const restAt = storedAt + LOAD_THREADS_IDLE_MS + SETTLE_LOAD_SECONDS * 1000;
    progress('waiting for the train process to come to rest');
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, restAt - performance.now())));
    return {
      versionId,
      outcome,
      runSeconds: (registeredAt - queuedAt) / 1000,
      aheadSeconds,
      storedBytes: (await storedIndexBytes(env.DATABASE_URL ?? '', versionId)) ?? 0,
      adoptedFrom:
        (await storedIndexes(env.DATABASE_URL ?? '')).find((one) => one.versionId === versionId)
          ?.adoptedFrom ?? null,
      activationToIndexSeconds: (servedAt - activatedAt) / 1000,
      openSeconds: (servedAt - storedAt) / 1000,
      trainPeakRssGiB: rss.peakGiB('boot'),
      trainRestRssGiB: Number((rssBytes(trainer.child.pid) / 2 ** 30).toFixed(2)),
    };
  } finally {
    rss.stop();
    await stopProcess(trainer.child);
  }
}

/** Seconds of recommend load after a swap before the api's memory is read. */
const SETTLE_LOAD_SECONDS = 5;

/** Until a load's threads (the catalog pass's, the bulk reader's) end once idle. */
const LOAD_THREADS_IDLE_MS = Math.max(CATALOG_THREAD_IDLE_MS, BULK_READER_IDLE_MS);

/**
 * `settings.swaps` activations round `versions` (each with its index stored), from the first
 * one not served: the time until `recommend` answers through the version's index, and the api's
 * resident set at its peak through the swap and once settled.
 */
async function swapRound(
  api: Api,
  versions: readonly string[],
  settings: Settings,
  load: { rss: RssPeaks; pid: number; bodies: readonly string[]; readKey: string },
): Promise<Record<string, string | number>[]> {
  const { endpoint, serving, waitFor } = api;
  const rows: Record<string, string | number>[] = [];
  const served = (await serving()).versionId;
  const first = (versions.indexOf(served ?? '') + 1) % versions.length;
  for (let swap = 1; swap <= settings.swaps; swap++) {
    const versionId = versions[(first + swap - 1) % versions.length] ?? '';
    progress(`swap ${String(swap)} of ${String(settings.swaps)}: activating version ${versionId}`);
    load.rss.enter(`swap ${String(swap)}`);
    await activate(api, versionId);
    const seconds = await waitFor(
      `recommend through version ${versionId}'s index`,
      async () => (await serving()).recommendVersionId === versionId,
      500,
    );
    await closedLoop(
      endpoint,
      { 'content-type': 'application/json', 'x-api-key': load.readKey },
      load.bodies,
      { seconds: SETTLE_LOAD_SECONDS, connections: settings.connections },
    );
    rows.push({
      swap,
      version: versionId,
      'activation → recommend through its index (s)': Number(seconds.toFixed(1)),
      'peak RSS GiB': load.rss.peakGiB(`swap ${String(swap)}`),
      'settled RSS GiB': Number((rssBytes(load.pid) / 2 ** 30).toFixed(2)),
    });
  }
  return rows;
}

/**
 * The api's resident set once the load's threads have ended (the catalog pass's and the bulk
 * reader's, idle since the last swap), under SETTLE_LOAD_SECONDS of recommend load.
 */
async function idleRssGiB(
  endpoint: string,
  settings: Settings,
  load: { pid: number; bodies: readonly string[]; readKey: string },
): Promise<number> {
  progress(`waiting ${String(LOAD_THREADS_IDLE_MS / 1000)} s for the load's threads to end`);
  await new Promise((resolve) => setTimeout(resolve, LOAD_THREADS_IDLE_MS));
  await closedLoop(
    endpoint,
    { 'content-type': 'application/json', 'x-api-key': load.readKey },
    load.bodies,
    { seconds: SETTLE_LOAD_SECONDS, connections: settings.connections },
  );
  return Number((rssBytes(load.pid) / 2 ** 30).toFixed(2));
}

const benchmark: Benchmark = {
  description:
    "one api process (compiled main.js) on a large catalog with a trained 384-d model: boot, recommend while the ANN index builds and after, a second api process opening the stored index, a train role process building (or adopting another version's graph for) a new version's index ahead, then a swap to a version the replica indexes itself",
  async run(args) {
    const settings = parseSettings(args);
    const main = compiled('src/main.ts');
    const cli = compiled('src/cli.ts');
    const base = loadConfig(process.env);
    const databaseUrl = databaseUrlFor(base.postgres.directUrl, DATABASE);
    const prefix = `bench-scale-${String(process.pid)}:`;
    const topicPrefix = `bench-scale-${String(process.pid)}.`;
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_KEY_PREFIX: prefix,
      KAFKA_TOPIC_PREFIX: topicPrefix,
      LOG_LEVEL: 'info',
      AUTH_MODE: 'api-key',
      NODE_ENV: 'production',
      TRAIN_CRON: 'off',
      TRAIN_EPOCHS: '2',
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
    };
    const loadBefore = loadavg()[0] ?? 0;
    try {
      progress(
        `database ${DATABASE}: ${settings.items.toLocaleString('en-US')} items, a week of events`,
      );
      const { catalog, events } = await seedCatalogAndWeek(databaseUrl, {
        items: settings.items,
        users: settings.users,
        impressions: settings.impressions,
        seed: SEED,
      });
      progress(`${TEXT_DIMENSION}-d text vectors for every item, then a FULL training run`);
      const trained = await trainServedVersion(
        loadConfig({ ...process.env, ...env }),
        catalog.items,
      );
      progress('online state rebuilt from the events (npm run cli -- rebuild-online-state)');
      execFileSync(process.execPath, [cli, 'rebuild-online-state'], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 2],
      });
      await createServedTopic(base, topicPrefix);
      const readKey = await createBenchApiKey(databaseUrl, 'read');
      const opsKey = await createBenchApiKey(databaseUrl, 'ops');
      const users = [
        ...new Set(events.filter((event) => event.type === 'click').map((e) => e.userId)),
      ];
      const random = new Random(SEED);
      const itemIds = catalog.items.map((item) => item.itemId);
      const bodies = users.map((u) => JSON.stringify({ query: RECOMMEND, variables: { u } }));

      progress(`starting the api role (${main})`);
      const spawnedAt = performance.now();
      const api = startRole('api', 'api', await freePort(), env);
      if (api.child.pid === undefined) throw new Error('the api process has no pid');
      const rss = new RssPeaks(api.child.pid);
      const endpoint = `http://127.0.0.1:${String(api.port)}/graphql`;
      const serving = async () =>
        (await graphql<{ servingModel: Serving }>(endpoint, opsKey, SERVING)).servingModel;
      const until = async (what: string, done: (state: Serving) => boolean) => {
        const started = performance.now();
        for (;;) {
          const state = await serving();
          if (done(state)) return (performance.now() - started) / 1000;
          if (performance.now() - started > INDEX_WAIT_MS) throw new Error(`no ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      };
      const indexed = async (port = api.port) => {
        const metrics = await (await fetch(`http://127.0.0.1:${String(port)}/metrics`)).text();
        return /^retrieval_index_bytes(\{[^}]*\})? [1-9]/m.test(metrics);
      };
      const waitFor = async (what: string, done: () => Promise<boolean>, everyMs: number) => {
        const started = performance.now();
        while (!(await done())) {
          if (performance.now() - started > INDEX_WAIT_MS) throw new Error(`no ${what}`);
          await new Promise((resolve) => setTimeout(resolve, everyMs));
        }
        return (performance.now() - started) / 1000;
      };
      const handle: Api = { endpoint, opsKey, serving, waitFor };
      const rows: Record<string, string | number>[] = [];
      const measure = async (phase: string) => {
        rss.enter(phase);
        progress(
          `${phase}: ${settings.probes} rank and recommend calls, then ${settings.loadSeconds} s of recommend load`,
        );
        const rankMs: number[] = [];
        const recommendMs: number[] = [];
        const rankVersions: string[] = [];
        const recommendVersions: string[] = [];
        for (let i = 0; i < settings.probes; i++) {
          const u = users[i % users.length];
          // 100 distinct items from anywhere in the catalog: a stride through it from a random start.
          const start = random.int(0, itemIds.length - 1);
          const stride = Math.floor(itemIds.length / 100);
          const c = Array.from({ length: 100 }, (_, k) => ({
            itemId: itemIds[(start + k * stride) % itemIds.length],
          }));
          let started = performance.now();
          const ranked = await graphql<{ rank: { modelVersion: string } }>(
            endpoint,
            readKey,
            RANK,
            { u, c },
          );
          rankMs.push(performance.now() - started);
          rankVersions.push(ranked.rank.modelVersion);
          started = performance.now();
          const recommended = await graphql<{ recommend: { modelVersion: string } }>(
            endpoint,
            readKey,
            RECOMMEND,
            { u },
          );
          recommendMs.push(performance.now() - started);
          recommendVersions.push(recommended.recommend.modelVersion);
        }
        const load = await closedLoop(
          endpoint,
          { 'content-type': 'application/json', 'x-api-key': readKey },
          bodies,
          { seconds: settings.loadSeconds, connections: settings.connections },
        );
        rankMs.sort((a, b) => a - b);
        recommendMs.sort((a, b) => a - b);
        const row = {
          phase,
          'recommend req/s': Math.round(load.requestsPerSecond),
          'recommend p50 ms (load)': load.p50Ms,
          'recommend p99 ms (load)': load.p99Ms,
          errors: load.errors,
          'recommend ms, one at a time (p50)': Number(percentile(recommendMs, 50).toFixed(1)),
          'recommend version': versionsOf(recommendVersions),
          'rank ms, one at a time (p50 / max)': `${percentile(rankMs, 50).toFixed(1)} / ${(rankMs.at(-1) ?? Number.NaN).toFixed(1)}`,
          'rank version': versionsOf(rankVersions),
          'peak RSS GiB': rss.peakGiB(phase),
        };
        rows.push(row);
        return row;
      };
      try {
        await waitReady(api);
        const bootSeconds = (performance.now() - spawnedAt) / 1000;
        const booted = await serving();
        if (booted.versionId !== trained.served) {
          throw new Error(`the api serves ${String(booted.versionId)}, not ${trained.served}`);
        }
        rss.enter('boot');
        await measure('exact scan (the first index building)');
        progress('waiting for the index (the api logs its progress every 5 %)');
        await waitFor('index', () => indexed(), 5000);
        const firstIndexSeconds = (performance.now() - spawnedAt) / 1000 - bootSeconds;
        // Stored next (the index written, hashed and copied into PostgreSQL): not during the
        // ANN phase, whose cores it would share.
        progress(`waiting for version ${trained.served}'s index to be stored in PostgreSQL`);
        const storeSeconds = await waitFor(
          'stored index',
          async () => (await storedIndexBytes(databaseUrl, trained.served)) !== undefined,
          1000,
        );
        const storedBytes = (await storedIndexBytes(databaseUrl, trained.served)) ?? 0;
        await measure('ANN');
        const replica =
          settings.secondReplica > 0 ? await secondReplica(env, waitFor, indexed) : undefined;
        let ahead: BuiltAhead | undefined;
        if (settings.builtAhead > 0) {
          rss.enter('built ahead');
          ahead = await builtAhead(env, handle);
          await measure(`ANN, version ${ahead.versionId} (its index built ahead)`);
        }
        progress(`activating version ${trained.second} (same artifact, its own id)`);
        rss.enter('swap');
        const activatedAt = performance.now();
        await activate(handle, trained.second);
        // Watched from the activation on, through the phase measured meanwhile.
        const secondIndex =
          settings.waitSecondIndex > 0
            ? waitFor(
                'second index',
                async () => (await serving()).recommendVersionId === trained.second,
                500,
              ).then(() => (performance.now() - activatedAt) / 1000)
            : undefined;
        const swapSeconds = await until('swap', (state) => state.versionId === trained.second);
        const during = await serving();
        await measure(`after the swap to version ${trained.second}`);
        let secondIndexSeconds: number | undefined;
        if (secondIndex !== undefined) {
          secondIndexSeconds = await secondIndex;
          await measure(`ANN, version ${trained.second}`);
        }
        const swaps = await swapRound(
          handle,
          [trained.served, ...(ahead === undefined ? [] : [ahead.versionId]), trained.second],
          settings,
          { rss, pid: api.child.pid, bodies, readKey },
        );
        const idleRss =
          swaps.length === 0
            ? undefined
            : await idleRssGiB(handle.endpoint, settings, { pid: api.child.pid, bodies, readKey });
        const indexes = await storedIndexes(databaseUrl);
        const notes = [
          `${settings.items.toLocaleString('en-US')} items with ${TEXT_DIMENSION}-d synthetic text vectors (category direction + noise) under the trainer's encoder id; version ${trained.served} trained by a FULL run (${trained.trainSeconds.toFixed(0)} s), version ${trained.second} the same artifact under its own id`,
          `api process start → listening with version ${trained.served} served: ${bootSeconds.toFixed(1)} s (the artifact, ${settings.items.toLocaleString('en-US')} text vectors read a page at a time, the item tower over them); peak RSS ${String(rss.peakGiB('boot'))} GiB`,
          `its first ANN index: ${firstIndexSeconds.toFixed(0)} s after that, on the index's thread; the exact scan answered recommend meanwhile; stored in PostgreSQL (${(storedBytes / 2 ** 20).toFixed(0)} MiB) ${storeSeconds.toFixed(0)} s later`,
          `activation of version ${trained.second} → this replica serves it: ${swapSeconds.toFixed(1)} s (text vectors unchanged: the loader's copy is reused); recommend then answered from version ${String(during.recommendVersionId)} until version ${trained.second}'s index was made; peak RSS through the swap ${String(rss.peakGiB('swap'))} GiB`,
          replica === undefined
            ? 'no second api process (--second-replica 1 starts one)'
            : `a second api process of the same version (a new replica, or a restart) listened after ${replica.bootSeconds.toFixed(1)} s and opened the stored index ${replica.openSeconds.toFixed(0)} s after, instead of building it; its peak RSS ${String(replica.peakRssGiB)} GiB`,
          ahead === undefined
            ? 'no index built ahead (--built-ahead 1 starts a train role process)'
            : `a train role process trained version ${ahead.versionId} (FULL run, ${ahead.runSeconds.toFixed(0)} s from queued to registered, ${ahead.outcome}) and ${ahead.adoptedFrom === null ? 'built' : `adopted version ${ahead.adoptedFrom}'s stored graph for`} and stored its index ahead in ${ahead.aheadSeconds.toFixed(0)} s (${(firstIndexSeconds / ahead.aheadSeconds).toFixed(1)}× sooner than this replica's build of version ${trained.served}'s index) (${(ahead.storedBytes / 2 ** 20).toFixed(0)} MiB; the train process's peak RSS ${String(ahead.trainPeakRssGiB)} GiB and ${String(ahead.trainRestRssGiB)} GiB at rest after it, the api's meanwhile ${String(rss.peakGiB('built ahead'))} GiB); the api served recommend through it ${ahead.openSeconds.toFixed(1)} s after it was stored, ${ahead.activationToIndexSeconds.toFixed(0)} s after its activation${ahead.outcome === 'promoted' ? ' at registration (the build in the train process included)' : ''}. A version activated once its index is stored (a candidate, a rollback, an arm) waits only for that open: ${(firstIndexSeconds / ahead.openSeconds).toFixed(1)}× sooner than the ${firstIndexSeconds.toFixed(0)} s this replica took to build version ${trained.served}'s index itself`,
          secondIndexSeconds === undefined
            ? `not waited for: version ${trained.second}'s index (--wait-second-index 1 waits and measures it)`
            : `version ${trained.second}'s index, and recommend on it: ${secondIndexSeconds.toFixed(0)} s after its activation`,
          `stored indexes at the end: ${indexes.map(describeIndex).join('; ')}`,
          `recommend load: ${settings.connections} connections, ${settings.loadSeconds} s, clicking users; one-at-a-time calls: ${settings.probes} rank (100 random catalog items) and recommend(first: 20) per phase`,
          `1-minute load average before the run: ${loadBefore.toFixed(2)}; PostgreSQL, Redis and the bench share the machine's cores`,
        ];
        if (swaps.length > 0) {
          notes.push(
            `api memory from swap to swap: after each activation the api is waited for until recommend answers through the version's index (opened from the store), then ${String(SETTLE_LOAD_SECONDS)} s of recommend load (its garbage collections run), then its RSS is read; peak = the largest RSS sampled each second from the activation on; ${String(LOAD_THREADS_IDLE_MS / 1000)} s after the last swap, when the load's threads (the catalog pass's, the bulk reader's) have ended, and ${String(SETTLE_LOAD_SECONDS)} s of load: RSS ${String(idleRss)} GiB`,
          );
        }
        return {
          title: `Catalog scale: one api process, ${settings.items.toLocaleString('en-US')} items × ${TEXT_DIMENSION}-d, a trained model`,
          rows,
          tables:
            swaps.length === 0 ? [] : [{ title: 'The api process from swap to swap', rows: swaps }],
          figures: {
            settings,
            swaps,
            idleRssGiB: idleRss,
            bootSeconds,
            firstIndexSeconds,
            storeSeconds,
            storedBytes,
            swapSeconds,
            secondIndexSeconds,
            secondReplica: replica,
            builtAhead: ahead,
            recommendVersionDuringSwap: during.recommendVersionId,
            storedIndexes: indexes,
            phases: rows,
            loadAverage1mBefore: loadBefore,
          },
          notes,
        };
      } finally {
        rss.stop();
        await stopProcess(api.child);
      }
    } finally {
      await clearRedis(base.redis.url, prefix).catch(() => undefined);
      await deleteServedTopic(base, topicPrefix);
      await dropDatabase(databaseUrl).catch(() => undefined);
    }
  },
};

export default benchmark;
