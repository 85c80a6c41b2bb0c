import { loadavg } from 'node:os';
import { Kafka, logLevel, Producer } from 'kafkajs';
import { Client } from 'pg';
import { loadConfig } from '../src/config/config';
import { TOPICS } from '../src/modules/ingest/ingest.service';
import { USER_EVENT_SCHEMA_VERSION } from '../src/modules/ingest/ingest.schemas';
import { SERVED_LOG_TOPICS } from '../src/modules/served-log/served-slate.codec';
import { generateBehaviour, generateCatalog, Random } from '../src/synthetic';
import type { SyntheticEvent } from '../src/synthetic';
import { freePort } from '../test/support/processes';
import { createBenchApiKey } from './lib/api-key';
import { Benchmark, integerFlag, progress } from './lib/harness';
import {
  clearRedis,
  databaseUrlFor,
  dropDatabase,
  freshDatabase,
  insertCatalog,
} from './lib/bench-store';
import { insertTextVectors, TEXT_DIMENSION, trainingContext } from './lib/trained-model';
import { compiled } from './lib/built-servers';
import { graphql, Role, startRole, waitReady, stopProcess } from './lib/roles';
import { BalancedLoad } from './lib/balanced-load';
import type { RequestRecord } from './lib/balanced-load';
import type { GeneratorStalls } from './lib/gc-pauses';
import { percentile } from './lib/percentile';

/** Own database per run: concurrent runs must not drop each other's. */
const DATABASE = `recsys_bench_cluster_${String(process.pid)}`;
const SEED = 'bench-cluster';
const RANK = `query Rank($u: ID!, $c: [CandidateInput!]!) {
  rank(userId: $u, candidates: $c) { items { itemId score } modelVersion requestId } }`;

interface Settings {
  readonly items: number;
  readonly users: number;
  readonly impressions: number;
  readonly candidates: number;
  /** `rank` requests per second over both api processes (open loop). */
  readonly rate: number;
  /** Events per second produced to user.events during the load. */
  readonly eventsRate: number;
  readonly trainEpochs: number;
  /** Seconds of load before the training run is queued. */
  readonly trainAfter: number;
  /** Seconds after both api processes serve the new version until one is killed. */
  readonly killAfterSwap: number;
  /** Seconds of load after the kill. */
  readonly tail: number;
  /** Longest the load runs waiting for the swap before killing anyway. */
  readonly maxSeconds: number;
}

function parseSettings(args: readonly string[]): Settings {
  const value = (flag: string, fallback: number): number => integerFlag(args, flag, fallback, 1);
  return {
    items: value('items', 20_000),
    users: value('users', 1000),
    impressions: value('impressions', 40_000),
    candidates: value('candidates', 100),
    rate: value('rate', 20),
    eventsRate: value('events-rate', 50),
    trainEpochs: value('train-epochs', 2),
    trainAfter: value('train-after', 10),
    killAfterSwap: value('kill-after-swap', 5),
    tail: value('tail', 10),
    maxSeconds: value('max-seconds', 300),
  };
}

function eventMessage(event: SyntheticEvent | LiveEvent) {
  return {
    key: event.userId,
    value: JSON.stringify({
      schemaVersion: USER_EVENT_SCHEMA_VERSION,
      eventId: event.eventId,
      type: event.type,
      userId: event.userId,
      itemId: event.itemId,
      timestamp: event.timestamp,
    }),
  };
}

interface LiveEvent {
  readonly eventId: string;
  readonly type: 'impression' | 'click';
  readonly userId: string;
  readonly itemId: string;
  readonly timestamp: string;
}

async function countEvents(databaseUrl: string): Promise<number> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM events');
    return Number(rows[0]?.n ?? 0);
  } finally {
    await db.end();
  }
}

async function waitForEvents(databaseUrl: string, expected: number, timeoutMs: number) {
  const started = Date.now();
  let stored = 0;
  while (Date.now() - started < timeoutMs) {
    stored = await countEvents(databaseUrl);
    if (stored >= expected) return stored;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return stored;
}

function latencies(records: readonly RequestRecord[], from = -Infinity, to = Infinity) {
  const inWindow = records.filter((r) => r.ok && r.scheduledMs >= from && r.scheduledMs < to);
  const sorted = inWindow.map((r) => r.latencyMs).sort((a, b) => a - b);
  return {
    requests: inWindow.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1) ?? Number.NaN,
  };
}

interface TrainingRunState {
  id: string;
  status: string;
  outcome: string | null;
  versionId: string | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

const RUN_FIELDS = 'id status outcome versionId error startedAt finishedAt';

/** Queues a training run through the api's GraphQL and waits for the train process to end it. */
async function trainThroughApi(
  endpoint: () => string,
  opsKey: string,
  mode: 'FULL' | 'INCREMENTAL',
): Promise<TrainingRunState> {
  const { trainModel } = await graphql<{ trainModel: TrainingRunState }>(
    endpoint(),
    opsKey,
    `mutation($mode: TrainingMode!) { trainModel(mode: $mode) { ${RUN_FIELDS} } }`,
    { mode },
  );
  let run = trainModel;
  while (run.status === 'QUEUED' || run.status === 'RUNNING') {
    await new Promise((resolve) => setTimeout(resolve, 500));
    run = (
      await graphql<{ trainingRun: TrainingRunState }>(
        endpoint(),
        opsKey,
        `query($id: ID!) { trainingRun(id: $id) { ${RUN_FIELDS} } }`,
        { id: run.id },
      )
    ).trainingRun;
  }
  return run;
}

/** Makes `run`'s version active: the gate did, or activateModelVersion does as ops would. */
async function ensureActive(
  endpoint: string,
  opsKey: string,
  run: TrainingRunState,
): Promise<{ versionId: string; by: string }> {
  if (run.versionId === null || run.status !== 'SUCCEEDED') {
    throw new Error(`training run ${run.id} ${run.status}: ${run.error ?? 'no version'}`);
  }
  if (run.outcome === 'promoted') return { versionId: run.versionId, by: 'promotion gate' };
  await graphql(endpoint, opsKey, 'mutation($id: ID!) { activateModelVersion(id: $id) { id } }', {
    id: run.versionId,
  });
  return { versionId: run.versionId, by: 'activateModelVersion (the gate kept a candidate)' };
}

async function servingVersion(endpoint: string, opsKey: string): Promise<string | null> {
  const { servingModel } = await graphql<{ servingModel: { versionId: string | null } }>(
    endpoint,
    opsKey,
    '{ servingModel { versionId } }',
  );
  return servingModel.versionId;
}

async function activationTime(databaseUrl: string, versionId: string): Promise<number> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query<{ at: Date }>(
      'SELECT created_at AS at FROM model_activations WHERE version_id = $1 ORDER BY id DESC LIMIT 1',
      [versionId],
    );
    const at = rows.at(0)?.at;
    if (at === undefined) throw new Error(`no activation of version ${versionId}`);
    return at.getTime();
  } finally {
    await db.end();
  }
}

const benchmark: Benchmark = {
  description:
    '2 api + 1 ingest + 1 train processes (compiled main.js): rank load while events flow, a training run activates a new version, one api process SIGKILLed mid-load',
  async run(args) {
    const settings = parseSettings(args);
    compiled('src/main.ts');
    const base = loadConfig(process.env);
    // The bench's own reads and set-up go direct; the processes' queries where DATABASE_URL points
    // (a transaction-mode pooler with PG_POOLER=transaction).
    const databaseUrl = databaseUrlFor(base.postgres.directUrl, DATABASE);
    const queriesUrl = databaseUrlFor(base.postgres.url, DATABASE);
    const prefix = `bench:cluster:${process.pid}:`;
    const topicPrefix = `bench-cluster-${process.pid}-`;
    const kafka = new Kafka({
      clientId: 'bench-cluster',
      brokers: [...base.kafka.brokers],
      logLevel: logLevel.NOTHING,
    });
    const topics = [...Object.values(TOPICS), ...Object.values(SERVED_LOG_TOPICS)].map(
      (name) => `${topicPrefix}${name}`,
    );
    const roles: Role[] = [];
    let producer: Producer | undefined;
    const loadBefore = loadavg()[0] ?? 0;
    const killAll = () => {
      for (const role of roles) role.child.kill('SIGKILL');
    };
    process.once('exit', killAll);
    try {
      progress(`database ${DATABASE}: ${settings.items} items with ${TEXT_DIMENSION}-d vectors`);
      await freshDatabase(databaseUrl);
      const catalog = generateCatalog({ items: settings.items, seed: SEED });
      await insertCatalog(databaseUrl, catalog.items);
      const env = {
        DATABASE_URL: queriesUrl,
        DATABASE_DIRECT_URL: databaseUrl,
        REDIS_KEY_PREFIX: prefix,
        KAFKA_TOPIC_PREFIX: topicPrefix,
        LOG_LEVEL: 'warn',
        AUTH_MODE: 'api-key',
        NODE_ENV: 'production',
        TRAIN_CRON: 'off',
        TRAIN_EPOCHS: String(settings.trainEpochs),
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
      };
      const context = await trainingContext(loadConfig({ ...process.env, ...env }));
      try {
        await insertTextVectors(context, databaseUrl, catalog.items);
      } finally {
        await context.close();
      }
      const admin = kafka.admin();
      await admin.connect();
      try {
        await admin.createTopics({
          topics: topics.map((topic) => ({
            topic,
            numPartitions: topic.endsWith(TOPICS.events) ? 6 : 1,
          })),
          waitForLeaders: true,
        });
      } finally {
        await admin.disconnect();
      }
      const readKey = await createBenchApiKey(databaseUrl, 'read');
      const opsKey = await createBenchApiKey(databaseUrl, 'ops');
      progress('starting api A, api B, ingest, train (node main.js <role>, compiled)');
      for (const [name, role] of [
        ['api-a', 'api'],
        ['api-b', 'api'],
        ['ingest', 'ingest'],
        ['train', 'train'],
      ] as const) {
        roles.push(startRole(name, role, await freePort(), env));
      }
      await Promise.all(roles.map(waitReady));
      const apis = roles.filter((role) => role.role === 'api');
      const endpoints = apis.map((role) => `http://127.0.0.1:${role.port}/graphql`);
      const to = new Date();
      const behaviour = generateBehaviour({
        catalog,
        users: settings.users,
        impressions: settings.impressions,
        seed: SEED,
        from: new Date(to.getTime() - 7 * 86_400_000),
        to,
      });
      progress(`${behaviour.events.length} events into ${topicPrefix}${TOPICS.events}`);
      producer = kafka.producer();
      await producer.connect();
      for (let i = 0; i < behaviour.events.length; i += 5000) {
        await producer.send({
          topic: `${topicPrefix}${TOPICS.events}`,
          messages: behaviour.events.slice(i, i + 5000).map(eventMessage),
        });
      }
      const seeded = await waitForEvents(databaseUrl, behaviour.events.length, 300_000);
      if (seeded < behaviour.events.length) {
        throw new Error(`ingest stored ${seeded} of ${behaviour.events.length} events`);
      }
      progress('FULL training run through trainModel (the train process runs it)');
      const first = await trainThroughApi(() => endpoints[0] ?? '', opsKey, 'FULL');
      const initial = await ensureActive(endpoints[0] ?? '', opsKey, first);
      for (const endpoint of endpoints) {
        const started = Date.now();
        while ((await servingVersion(endpoint, opsKey)) !== initial.versionId) {
          if (Date.now() - started > 120_000) throw new Error(`${endpoint} never served v1`);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      const users = [
        ...new Set(behaviour.events.filter((e) => e.type === 'click').map((e) => e.userId)),
      ];
      const random = new Random('bench-cluster-requests');
      const itemIds = catalog.items.map((item) => item.itemId);
      const bodies = random.sample(users, users.length).map((user) =>
        JSON.stringify({
          query: RANK,
          variables: {
            u: user,
            c: random.sample(itemIds, settings.candidates).map((itemId) => ({ itemId })),
          },
        }),
      );
      progress(
        `version ${initial.versionId} served by both; load: ${settings.rate} rank/s round-robin, ${settings.eventsRate} events/s`,
      );
      const load = await BalancedLoad.start({
        endpoints,
        headers: { 'content-type': 'application/json', 'x-api-key': readKey },
        bodies,
        rate: settings.rate,
      });
      let produced = 0;
      let producing: Promise<unknown> = Promise.resolve();
      const live = producer;
      const eventTimer = setInterval(() => {
        const batch = Array.from(
          { length: Math.max(1, Math.round(settings.eventsRate / 10)) },
          () => {
            const event: LiveEvent = {
              eventId: `bench-live-${String(++produced)}`,
              type: random.next() < 0.2 ? 'click' : 'impression',
              userId: random.pick(users),
              itemId: random.pick(itemIds),
              timestamp: new Date().toISOString(),
            };
            return eventMessage(event);
          },
        );
        producing = producing.then(() =>
          live.send({ topic: `${topicPrefix}${TOPICS.events}`, messages: batch }),
        );
      }, 100);
      const killed = apis.at(1);
      if (killed === undefined) throw new Error('no second api process');
      const alive = () => endpoints[0] ?? '';
      let trainQueuedMs = Number.NaN;
      let activatedMs = Number.NaN;
      let killMs = Number.NaN;
      let second: { versionId: string; by: string } | undefined;
      let run: TrainingRunState | undefined;
      let generatorStalls: GeneratorStalls | undefined;
      try {
        await new Promise((resolve) => setTimeout(resolve, settings.trainAfter * 1000));
        progress('INCREMENTAL training run through trainModel, mid-load');
        trainQueuedMs = load.now();
        run = await trainThroughApi(alive, opsKey, 'INCREMENTAL');
        second = await ensureActive(alive(), opsKey, run);
        activatedMs = (await activationTime(databaseUrl, second.versionId)) - load.wallStart;
        progress(`version ${second.versionId} active (${second.by}); waiting for both to serve it`);
        const servesSecond = (endpoint: number) =>
          load.records.some((r) => r.endpoint === endpoint && r.modelVersion === second?.versionId);
        while (!(servesSecond(0) && servesSecond(1))) {
          if (load.now() > settings.maxSeconds * 1000) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        await new Promise((resolve) => setTimeout(resolve, settings.killAfterSwap * 1000));
        progress(`SIGKILL ${killed.name} (pid ${String(killed.child.pid)})`);
        killMs = load.now();
        killed.child.kill('SIGKILL');
        await new Promise((resolve) => setTimeout(resolve, settings.tail * 1000));
      } finally {
        generatorStalls = await load.stop();
        clearInterval(eventTimer);
        await producing;
      }
      const endMs = load.now();
      const { records } = load;
      const liveStored =
        (await waitForEvents(databaseUrl, behaviour.events.length + produced, 30_000)) -
        behaviour.events.length;
      const killedIndex = 1;
      const failed = records.filter((r) => !r.ok);
      // Sent to the killed process before the kill and not answered by then.
      const inFlightAtKill = (r: Pick<RequestRecord, 'endpoint' | 'sentMs'>, doneMs: number) =>
        r.endpoint === killedIndex && r.sentMs <= killMs && doneMs >= killMs;
      const allowed = failed.filter((r) => inFlightAtKill(r, r.doneMs));
      const disallowed = failed.filter((r) => !inFlightAtKill(r, r.doneMs));
      const retried = records.filter((r) => r.retriedFrom !== null);
      const retriedInFlight = retried.filter(
        (r) => r.retriedFrom !== null && inFlightAtKill(r.retriedFrom, r.sentMs),
      );
      // One row per api, error and whether in flight at the kill: a count and its time span.
      const groups = new Map<string, { rows: RequestRecord[]; inFlight: boolean }>();
      for (const r of failed) {
        const inFlight = inFlightAtKill(r, r.doneMs);
        const key = `${String(r.endpoint)}|${r.error ?? ''}|${String(inFlight)}`;
        const group = groups.get(key) ?? { rows: [], inFlight };
        group.rows.push(r);
        groups.set(key, group);
      }
      const failureRows = [...groups.values()].map(({ rows, inFlight }) => ({
        api: apis[rows[0]?.endpoint ?? 0]?.name ?? '',
        error: rows[0]?.error ?? '',
        'in flight on the killed process at the kill': inFlight ? 'yes' : 'NO',
        requests: rows.length,
        'first sent s': Number((Math.min(...rows.map((r) => r.sentMs)) / 1000).toFixed(2)),
        'last ended s': Number((Math.max(...rows.map((r) => r.doneMs)) / 1000).toFixed(2)),
      }));
      const swapSeen = endpoints.map((_, endpoint) => {
        const mine = records.filter((r) => r.endpoint === endpoint && r.ok);
        const firstNew = mine.find((r) => r.modelVersion === second.versionId);
        const lastOld = mine.filter((r) => r.modelVersion === initial.versionId).at(-1);
        return {
          firstNewMs: firstNew?.doneMs ?? Number.NaN,
          lastOldMs: lastOld?.doneMs ?? Number.NaN,
        };
      });
      const swapEndMs = Math.max(...swapSeen.map((s) => s.firstNewMs));
      const swapFrom = activatedMs - 1000;
      const swapTo = swapEndMs + 5000;
      const swap = latencies(records, swapFrom, swapTo);
      const windows = [
        { window: 'whole run', from: 0, to: endMs },
        { window: 'before the training run', from: 0, to: trainQueuedMs },
        { window: 'training (train process busy)', from: trainQueuedMs, to: activatedMs },
        {
          window: 'swap: activation − 1 s … both serve it + 5 s',
          from: swapFrom,
          to: swapTo,
        },
        { window: 'after the kill', from: killMs, to: endMs },
      ].map(({ window, from, to: until }) => {
        const measured = latencies(records, from, until);
        return {
          window,
          'from s': Number((from / 1000).toFixed(1)),
          'to s': Number((until / 1000).toFixed(1)),
          answered: measured.requests,
          'p50 ms': measured.p50Ms,
          'p99 ms': measured.p99Ms,
          'max ms': measured.maxMs,
        };
      });
      const perApi = apis.map((role, endpoint) => ({
        process: `${role.name} (port ${String(role.port)})${endpoint === killedIndex ? ', killed' : ''}`,
        requests: records.filter((r) => r.endpoint === endpoint).length,
        failed: failed.filter((r) => r.endpoint === endpoint).length,
        'first answer with the new version, s after activation': Number(
          (((swapSeen[endpoint]?.firstNewMs ?? Number.NaN) - activatedMs) / 1000).toFixed(2),
        ),
        'last answer with the old version, s after activation': Number(
          (((swapSeen[endpoint]?.lastOldMs ?? Number.NaN) - activatedMs) / 1000).toFixed(2),
        ),
      }));
      const overall = latencies(records);
      return {
        title: `Cluster run: 2 api + ingest + train processes, ${settings.items.toLocaleString('en-US')} items × ${TEXT_DIMENSION}-d, ${settings.rate} rank/s + ${settings.eventsRate} events/s, ${(endMs / 1000).toFixed(0)} s`,
        rows: windows,
        tables: [
          { title: 'Per api process', rows: perApi },
          { title: 'Failed requests (grouped)', rows: failureRows },
        ],
        figures: {
          settings,
          requests: records.length,
          ok: records.length - failed.length,
          failed: failed.length,
          failedInFlightAtKill: allowed.length,
          failedOtherwise: disallowed.length,
          retried: retried.length,
          retriedInFlightAtKill: retriedInFlight.length,
          generatorStalls,
          overall,
          windows,
          perApi,
          initialVersion: initial.versionId,
          newVersion: second.versionId,
          activatedBy: second.by,
          trainingRun: run,
          trainQueuedMs,
          activatedMs,
          killMs,
          endMs,
          eventsProduced: produced,
          eventsStored: liveStored,
          targets: {
            onlyInFlightFail: disallowed.length === 0,
          },
          loadAverage1mBefore: loadBefore,
        },
        notes: [
          `requests: ${records.length}, failed: ${failed.length} (${allowed.length} in flight on ${killed.name} when it was killed, ${disallowed.length} otherwise: ${disallowed.length === 0 ? 'only in-flight requests failed' : 'NOT only in-flight requests failed'})`,
          `retried on api-a after their connection to ${killed.name} failed before any answer: ${retried.length} (${retriedInFlight.length} of them in flight at the kill, ${retried.length - retriedInFlight.length} sent after it on a connection the dead process had held or refused); HTTP clients retry an idempotent request once when a kept-alive connection turns out closed, and rank only reads`,
          `p50/p99 over the whole run: ${overall.p50Ms.toFixed(1)} / ${overall.p99Ms.toFixed(1)} ms; through the swap (${(swapFrom / 1000).toFixed(1)}–${(swapTo / 1000).toFixed(1)} s, ${swap.requests} requests): ${swap.p50Ms.toFixed(1)} / ${swap.p99Ms.toFixed(1)} ms`,
          `training: run ${run.id} (INCREMENTAL, queued at ${(trainQueuedMs / 1000).toFixed(1)} s by trainModel on api-a, run by the train process) → version ${second.versionId}, active at ${(activatedMs / 1000).toFixed(1)} s (${second.by}); activation announced by PostgreSQL NOTIFY; swap seen = the first rank answer of each process carrying the new modelVersion`,
          `${killed.name} SIGKILLed at ${(killMs / 1000).toFixed(1)} s; the balancer drops an endpoint on its first connection error; a request whose connection was refused or whose kept-alive connection failed before any answer goes once to the other endpoint; one that lost its connection after an answer began, or on a fresh connection, fails`,
          `events: ${produced} produced to user.events during the load, ${liveStored} stored by the ingest process by the end (+30 s grace); ${behaviour.events.length} seed events went through the same topic and ingest before the load`,
          `first version ${initial.versionId}: FULL training run queued by trainModel, run by the train process (${settings.trainEpochs} epochs), ${initial.by}; text vectors are ${TEXT_DIMENSION}-d synthetic (category direction + noise) under the trainer's encoder id`,
          `PostgreSQL: ${base.postgres.pooler === 'none' ? 'every process direct' : `the processes' queries through a transaction-mode pooler at ${new URL(queriesUrl).host} (PG_POOLER=transaction), LISTEN, locks and migrations direct`}`,
          `isolation: database ${DATABASE}, Redis prefix ${prefix}, Kafka topics and consumer groups prefixed ${topicPrefix}; every process is node main.js <role> (src compiled to JavaScript) with NODE_ENV=production, AUTH_MODE=api-key (rank sends a read key, trainModel an ops key)`,
          `all four processes, PostgreSQL, Redis, Kafka and the load generator share this machine's cores; 1-minute load average before the run: ${loadBefore.toFixed(2)}`,
          `load generator: a worker thread of the bench with a heap of its own; its own stalls count in the latencies above: event-loop delay p99 ${generatorStalls.delayP99Ms.toFixed(1)} ms, max ${generatorStalls.delayMaxMs.toFixed(1)} ms; its collections: ${generatorStalls.gc.scavenges} scavenges, ${generatorStalls.gc.fullGcs} mark-compacts, the longest ${generatorStalls.gc.longestMs.toFixed(1)} ms`,
        ],
      };
    } finally {
      await producer?.disconnect().catch(() => undefined);
      await Promise.all(roles.map((role) => stopProcess(role.child)));
      process.removeListener('exit', killAll);
      const admin = kafka.admin();
      await admin
        .connect()
        .then(() => admin.deleteTopics({ topics }))
        .catch(() => undefined)
        .finally(() => admin.disconnect());
      await clearRedis(base.redis.url, prefix).catch(() => undefined);
      await dropDatabase(databaseUrl).catch(() => undefined);
    }
  },
};

export default benchmark;
