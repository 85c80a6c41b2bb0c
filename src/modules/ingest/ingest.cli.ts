import { createReadStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { CliCommand, CliContext } from '../../cli-command';
import { parseFlags } from '../../cli-command';
import { KafkaClients } from '../../infra/kafka';
import { createPgPool } from '../../infra/postgres';
import { createRedisClient } from '../../infra/redis';
import { generateBehaviour, generateCatalog } from '../../synthetic';
import { Metrics } from '../metrics/metrics.registry';
import { IngestKafkaRepository, OutgoingMessage } from './ingest-kafka.repository';
import { IngestRepository } from './ingest.repository';
import { TOPICS } from './ingest.service';
import { OnlineStateRedisRepository } from '../online-state/online-state-redis.repository';
import { OnlineStateWriter } from '../online-state/online-state.writer';
import { OnlineStateService } from './online-state.service';

const PRODUCE_CHUNK = 1000;

/** The partition key each contract names; other topics are produced without a key. */
const KEY_FIELDS: Readonly<Record<string, string>> = {
  [TOPICS.events]: 'userId',
  [TOPICS.items]: 'itemId',
};

function keyOf(line: string, field: string | undefined): string | null {
  if (field === undefined) return null;
  try {
    const value = (JSON.parse(line) as Record<string, unknown> | null)?.[field];
    return typeof value === 'string' ? value : null;
  } catch {
    // Malformed lines are still produced (unkeyed), so producers can exercise the DLQ.
    return null;
  }
}

/** Produces lines (one message each, bytes as given) in chunks; returns how many. */
async function produceLines(
  repository: IngestKafkaRepository,
  topic: string,
  lines: AsyncIterable<string> | Iterable<string>,
  onProgress?: (sent: number) => void,
): Promise<number> {
  const field = KEY_FIELDS[topic];
  let chunk: OutgoingMessage[] = [];
  let sent = 0;
  for await (const line of lines) {
    if (line.trim().length === 0) continue;
    chunk.push({ key: keyOf(line, field), value: line });
    if (chunk.length >= PRODUCE_CHUNK) {
      await repository.produce(topic, chunk);
      sent += chunk.length;
      chunk = [];
      onProgress?.(sent);
    }
  }
  await repository.produce(topic, chunk);
  return sent + chunk.length;
}

/** Clients for commands that run without the role modules (no consumers started). */
async function withIngest<T>(
  context: CliContext,
  work: (parts: {
    repository: IngestRepository;
    kafka: IngestKafkaRepository;
    onlineState: () => Promise<OnlineStateService>;
  }) => Promise<T>,
): Promise<T> {
  const { config, logger } = context;
  const pool = createPgPool(config.postgres, logger);
  let redis: ReturnType<typeof createRedisClient> | undefined;
  const kafkaClients = new KafkaClients(config.kafka, logger);
  const repository = new IngestRepository(pool);
  const kafka = new IngestKafkaRepository(kafkaClients, config);
  try {
    return await work({
      repository,
      kafka,
      onlineState: async () => {
        redis = createRedisClient(config.redis, logger);
        await redis.connect();
        return new OnlineStateService(
          repository,
          new OnlineStateWriter(new OnlineStateRedisRepository(redis, config), config),
          config,
          logger,
          new Metrics({ role: 'cli' }),
        );
      },
    });
  } finally {
    await kafkaClients.close();
    if (redis?.isOpen) await redis.close();
    await pool.end();
  }
}

function intFlag(flags: Map<string, string | true>, name: string, fallback: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`--${name} must be an integer >= 0`);
  return value;
}

function toJsonl(values: readonly unknown[]): string {
  return values.map((value) => JSON.stringify(value)).join('\n') + '\n';
}

const produce: CliCommand = {
  name: 'produce',
  usage: 'produce --topic <topic> --file <file.jsonl>',
  summary: 'publish one message per line (key from the topic contract; topic prefix applied)',
  async run(args, context) {
    const { flags } = parseFlags(args);
    const topic = flags.get('topic');
    const file = flags.get('file');
    if (typeof topic !== 'string' || typeof file !== 'string') {
      throw new Error(`usage: ${this.usage}`);
    }
    const sent = await withIngest(context, ({ kafka }) =>
      produceLines(
        kafka,
        topic,
        createInterface({ input: createReadStream(file), crlfDelay: Infinity }),
      ),
    );
    process.stdout.write(
      `produced ${sent} messages to ${context.config.kafka.topicPrefix}${topic}\n`,
    );
  },
};

const rebuild: CliCommand = {
  name: 'rebuild-online-state',
  usage: 'rebuild-online-state',
  summary: 'clear the Redis online state and rebuild it from every event in PostgreSQL',
  async run(_args, context) {
    const started = Date.now();
    const result = await withIngest(context, async ({ onlineState }) =>
      (await onlineState()).rebuild(({ applied, total }) => {
        const pct = total > 0 ? Math.min(100, (100 * applied) / total).toFixed(1) : '100.0';
        process.stderr.write(`\rrebuilt ${applied}/${total} events (${pct}%)`);
      }),
    );
    process.stderr.write('\n');
    process.stdout.write(
      `online state rebuilt from ${result.applied} events in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
  },
};

interface SizeFlags {
  items: number;
  users: number;
  impressions: number;
  seed: string;
}

function sizeFlags(flags: Map<string, string | true>, defaults: SizeFlags): SizeFlags {
  const seed = flags.get('seed');
  return {
    items: intFlag(flags, 'items', defaults.items),
    users: intFlag(flags, 'users', defaults.users),
    impressions: intFlag(flags, 'impressions', defaults.impressions),
    seed: typeof seed === 'string' ? seed : defaults.seed,
  };
}

function generateAll(size: SizeFlags, to?: Date) {
  const catalog = generateCatalog({ items: size.items, seed: size.seed });
  const behaviour = generateBehaviour({
    catalog,
    users: size.users,
    impressions: size.impressions,
    seed: size.seed,
    ...(to ? { from: new Date(to.getTime() - 30 * 86_400_000), to } : {}),
  });
  return { catalog, behaviour };
}

const generate: CliCommand = {
  name: 'generate',
  usage: 'generate [--out dir] [--items n] [--users n] [--impressions n] [--seed s]',
  summary: 'write synthetic items.jsonl, events.jsonl and users.jsonl (deterministic per seed)',
  run(args) {
    const { flags } = parseFlags(args);
    const out = flags.get('out');
    const dir = typeof out === 'string' ? out : 'data/synthetic';
    const size = sizeFlags(flags, { items: 2000, users: 500, impressions: 50_000, seed: '1' });
    const { catalog, behaviour } = generateAll(size);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'items.jsonl'), toJsonl(catalog.items));
    writeFileSync(path.join(dir, 'events.jsonl'), toJsonl(behaviour.events));
    writeFileSync(path.join(dir, 'users.jsonl'), toJsonl(behaviour.users));
    process.stdout.write(
      `wrote ${catalog.items.length} items, ${behaviour.events.length} events, ${behaviour.users.length} users to ${dir}\n`,
    );
    return Promise.resolve();
  },
};

const seedIfEmpty: CliCommand = {
  name: 'seed-if-empty',
  usage: 'seed-if-empty [--items n] [--users n] [--impressions n] [--seed s]',
  summary: 'when the database has no items and no events, publish synthetic data through Kafka',
  async run(args, context) {
    const { flags } = parseFlags(args);
    const size = sizeFlags(flags, { items: 1000, users: 300, impressions: 30_000, seed: 'demo' });
    await withIngest(context, async ({ repository, kafka }) => {
      if (!(await repository.isEmpty())) {
        process.stdout.write('database not empty; not seeding\n');
        return;
      }
      // The last 30 days up to today (midnight), so popularity and recency look alive in the demo.
      const today = new Date(new Date().toISOString().slice(0, 10));
      const { catalog, behaviour } = generateAll(size, today);
      const items = await produceLines(
        kafka,
        TOPICS.items,
        catalog.items.map((item) => JSON.stringify(item)),
      );
      const events = await produceLines(
        kafka,
        TOPICS.events,
        behaviour.events.map((event) => JSON.stringify(event)),
      );
      process.stdout.write(`seeded ${items} items and ${events} events through Kafka\n`);
    });
  },
};

export const INGEST_COMMANDS: readonly CliCommand[] = [produce, rebuild, generate, seedIfEmpty];
