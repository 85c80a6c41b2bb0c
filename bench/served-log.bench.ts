import { randomBytes } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { INestApplicationContext } from '@nestjs/common';
import { Kafka, logLevel } from 'kafkajs';
import { Client } from 'pg';
import { Counter } from 'prom-client';
import { createLogger } from '../src/common/logger';
import { loadConfig } from '../src/config/config';
import { migrate } from '../src/infra/migrator';
import { Metrics } from '../src/modules/metrics/metrics.registry';
import {
  ServedLogIngestModule,
  ServedLogModule,
} from '../src/modules/served-log/served-log.module';
import type { ServedSlate } from '../src/modules/served-log/served-slate';
import { encodeServedSlate, SERVED_LOG_TOPICS } from '../src/modules/served-log/served-slate.codec';
import { ServedSlateRecorder } from '../src/modules/served-log/served-slate.recorder';
import { startModules } from '../test/support/module-context';
import { Benchmark, integerFlag, progress } from './lib/harness';

const DATABASE = 'recsys_bench_served_log';
const TICK_MS = 10;
/** What `rank` logs today: the model score and the five built-in features. */
const FEATURES = ['model', 'popularity', 'ctr', 'recency', 'price', 'boost'];

interface Settings {
  readonly rate: number;
  readonly seconds: number;
  readonly items: number;
}

/** A `rank` answer of 100 candidates as the ranking module hands it over (fresh arrays each). */
function makeSlate(index: number, items: number): ServedSlate {
  const width = FEATURES.length;
  const values = new Float64Array(items * width);
  for (let at = 0; at < values.length; at++) {
    values[at] = at % width === 0 ? 2 + 6 * Math.random() : Math.random();
  }
  return {
    requestId: `bench-${index}`,
    userId: `user-${String(index % 2000).padStart(6, '0')}`,
    operation: 'rank',
    servedAt: Date.now(),
    modelVersion: '42',
    profile: 'default',
    experiment: null,
    candidates: 100,
    features: FEATURES,
    itemIds: Array.from(
      { length: items },
      (_, p) => `item-${String((index * 7 + p) % 50_000).padStart(6, '0')}`,
    ),
    scores: new Float64Array(items).map((_, p) => 10 - p / 10),
    values,
  };
}

async function counter(app: INestApplicationContext, name: string): Promise<number> {
  const metric = app.get(Metrics).registry.getSingleMetric(name) as Counter | undefined;
  if (metric === undefined) return 0;
  return (await metric.get()).values.reduce((sum, value) => sum + value.value, 0);
}

interface Phase {
  readonly slates: number;
  /** CPU of the whole process, every thread. */
  readonly cpuMicros: number;
  /** Time the main thread (the event loop that serves requests) was busy. */
  readonly mainThreadMicros: number;
  readonly recordNanos: number;
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
}

/**
 * Builds and records `rate` slates a second for `seconds` in ticks of TICK_MS, as `rank` would;
 * with the log off, what is left is the cost of building the slates and of the loop itself.
 */
async function generate(recorder: ServedSlateRecorder, settings: Settings): Promise<Phase> {
  const perTick = Math.max(1, Math.round((settings.rate * TICK_MS) / 1000));
  const ticks = Math.round((settings.seconds * 1000) / TICK_MS);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let recordNanos = 0n;
  let index = 0;
  const cpu = process.cpuUsage();
  const loop = performance.eventLoopUtilization();
  delay.enable();
  for (let tick = 0; tick < ticks; tick++) {
    const due = performance.now() + TICK_MS;
    for (let n = 0; n < perTick; n++) {
      const slate = makeSlate(index++, settings.items);
      const before = process.hrtime.bigint();
      recorder.record(slate);
      recordNanos += process.hrtime.bigint() - before;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
  }
  await recorder.drain();
  delay.disable();
  const used = process.cpuUsage(cpu);
  const busy = performance.eventLoopUtilization(loop);
  return {
    slates: index,
    cpuMicros: used.user + used.system,
    mainThreadMicros: busy.active * 1000,
    recordNanos: Number(recordNanos) / index,
    loopDelayP99Ms: delay.percentile(99) / 1e6,
    loopDelayMaxMs: delay.max / 1e6,
  };
}

/** `npm run bench -- served-log [--rate n --seconds n --items n]`. */
const benchmark: Benchmark = {
  description:
    'served-slate log: CPU per recorded slate in the api process (record, encode, send to Kafka), event-loop delay, and the ingest rate into served_slates',
  async run(args) {
    const settings: Settings = {
      rate: integerFlag(args, 'rate', 2000, 1),
      seconds: integerFlag(args, 'seconds', 10, 1),
      items: integerFlag(args, 'items', 50, 1),
    };
    const id = randomBytes(3).toString('hex');
    const base = loadConfig(process.env);
    const admin = new URL(base.postgres.url);
    admin.pathname = '/postgres';
    const adminClient = new Client({ connectionString: admin.toString() });
    await adminClient.connect();
    await adminClient.query(`DROP DATABASE IF EXISTS ${DATABASE} WITH (FORCE)`);
    await adminClient.end();
    const databaseUrl = new URL(base.postgres.url);
    databaseUrl.pathname = `/${DATABASE}`;
    await migrate(databaseUrl.toString(), createLogger('warn'));
    const env = {
      ...process.env,
      DATABASE_URL: databaseUrl.toString(),
      KAFKA_TOPIC_PREFIX: `bsl${id}.`,
      LOG_LEVEL: 'warn',
      SERVED_LOG_DEPTH: String(settings.items),
    };
    const config = loadConfig(env);
    const kafka = new Kafka({ brokers: [...config.kafka.brokers], logLevel: logLevel.NOTHING });
    const kafkaAdmin = kafka.admin();
    await kafkaAdmin.connect();
    const topics = [
      { topic: `bsl${id}.${SERVED_LOG_TOPICS.slates}`, numPartitions: 6 },
      { topic: `bsl${id}.${SERVED_LOG_TOPICS.deadLetters}`, numPartitions: 1 },
    ];
    await kafkaAdmin.createTopics({ topics, waitForLeaders: true });
    try {
      const bytes = Buffer.byteLength(
        encodeServedSlate(makeSlate(0, settings.items), settings.items),
      );
      progress(
        `log off: ${settings.rate} slates/s for ${settings.seconds} s (building slates only)`,
      );
      const off = await startModules(loadConfig({ ...env, SERVED_LOG_ENABLED: 'false' }), [
        ServedLogModule,
      ]);
      const baseline = await generate(off.get(ServedSlateRecorder), settings);
      await off.close();

      progress(`log on: ${settings.rate} slates/s for ${settings.seconds} s into Kafka`);
      const on = await startModules(config, [ServedLogModule]);
      const recorder = on.get(ServedSlateRecorder);
      // Connects the producer and warms the encoder outside the measured phase.
      await generate(recorder, { ...settings, seconds: 1 });
      const logged = await generate(recorder, settings);
      const slateCounts = on.get(Metrics).registry.getSingleMetric('served_log_slates_total');
      const outcomes: Partial<Record<string, number>> = Object.fromEntries(
        ((await slateCounts?.get())?.values ?? []).map((value) => [
          String(value.labels.outcome),
          value.value,
        ]),
      );
      await on.close();

      const produced = outcomes.sent ?? 0;
      progress(`ingest: consuming ${produced} slates into served_slates`);
      const started = performance.now();
      const ingest = await startModules(config, [ServedLogIngestModule]);
      while ((await counter(ingest, 'ingest_messages_total')) < produced) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const ingestSeconds = (performance.now() - started) / 1000;
      await ingest.close();
      const db = new Client({ connectionString: databaseUrl.toString() });
      await db.connect();
      const size = await db.query<{ rows: string; bytes: string }>(
        `SELECT count(*) AS rows,
                (SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
                  WHERE inhparent = 'served_slates'::regclass) AS bytes
           FROM served_slates`,
      );
      await db.end();
      const rows = Number(size.rows[0]?.rows ?? 0);
      const tableBytes = Number(size.rows[0]?.bytes ?? 0);

      const perSlate = (logged.cpuMicros - baseline.cpuMicros) / logged.slates;
      const mainPerSlate = (logged.mainThreadMicros - baseline.mainThreadMicros) / logged.slates;
      const figures = {
        ...settings,
        slateBytes: bytes,
        recordNs: Math.round(logged.recordNanos),
        cpuMicrosPerSlateBuild: baseline.cpuMicros / baseline.slates,
        cpuMicrosPerSlateLogged: perSlate,
        mainThreadMicrosPerSlateLogged: mainPerSlate,
        loopDelayP99MsOff: baseline.loopDelayP99Ms,
        loopDelayP99MsOn: logged.loopDelayP99Ms,
        loopDelayMaxMsOn: logged.loopDelayMaxMs,
        outcomes,
        ingestSlatesPerSecond: rows / ingestSeconds,
        storedRows: rows,
        tableBytesPerSlate: rows > 0 ? tableBytes / rows : 0,
      };
      return {
        title: `Served-slate log: ${settings.items} items × ${FEATURES.length} inputs, ${settings.rate} slates/s`,
        rows: [
          { figure: 'encoded slate (bytes)', value: bytes },
          { figure: 'record() per call (ns)', value: figures.recordNs },
          {
            figure: 'building the slate, CPU per slate (µs)',
            value: figures.cpuMicrosPerSlateBuild,
          },
          { figure: 'logging it: main thread busy per slate (µs)', value: mainPerSlate },
          { figure: 'logging it: CPU per slate, all threads (µs)', value: perSlate },
          {
            figure: 'event-loop delay p99, log off / on (ms)',
            value: `${baseline.loopDelayP99Ms.toFixed(1)} / ${logged.loopDelayP99Ms.toFixed(1)}`,
          },
          { figure: 'event-loop delay max, log on (ms)', value: logged.loopDelayMaxMs },
          { figure: 'ingest into served_slates (slates/s)', value: figures.ingestSlatesPerSecond },
          { figure: 'table and indexes per slate (bytes)', value: figures.tableBytesPerSlate },
        ],
        figures,
        notes: [
          `outcomes: ${JSON.stringify(outcomes)}`,
          'Per logged slate: with the log on minus with it off, per slate. The main thread is what requests wait for (encoding, handing the batch to the producer thread); all threads adds the producer thread (kafkajs framing and CRC). Compare with the server CPU of one rank request in docs/performance.md.',
        ],
      };
    } finally {
      await kafkaAdmin
        .deleteTopics({ topics: topics.map((topic) => topic.topic) })
        .catch(() => undefined);
      await kafkaAdmin.disconnect();
    }
  },
};

export default benchmark;
