import { randomBytes, randomUUID } from 'node:crypto';
import { createLogger } from '../src/common/logger';
import { loadConfig } from '../src/config/config';
import { createClient } from 'redis';
import { createRedisClient } from '../src/infra/redis';
import { toEventRow } from '../src/modules/ingest/ingest.batch';
import type { EventRow } from '../src/modules/ingest/ingest.batch';
import { fastUserEvent } from '../src/modules/ingest/ingest.schemas';
import { OnlineStateRedisRepository } from '../src/modules/online-state/online-state-redis.repository';
import { OnlineStateWriter } from '../src/modules/online-state/online-state.writer';
import { UserVectorCacheRepository } from '../src/modules/ranking/user-vector-cache.repository';
import { generateBehaviour, generateCatalog, Random } from '../src/synthetic';
import { Benchmark, integerFlag, progress } from './lib/harness';

/** Events per `apply` call: one ingest chunk's worth of online-state update. */
const CHUNK = 5000;
/** Dimension of a cached user interest vector (the sentence encoder's, all-MiniLM-L6-v2). */
const VECTOR_DIMENSION = 384;
const GiB = 1024 ** 3;

type KeyKind =
  | 'recent:{userId}'
  | 'interest:{userId}'
  | 'rank:uvec:{userId}'
  | 'item-pop:{itemId}'
  | 'pop-rank'
  | 'pop-changes'
  | 'applied:{token}';

const PER_USER: readonly KeyKind[] = ['recent:{userId}', 'interest:{userId}'];

/** The measured server itself (INFO, MEMORY USAGE: one standalone Redis). */
type Server = ReturnType<typeof createClient>;

function kindOf(key: string, prefix: string): KeyKind {
  // Without the hash tag (`{u3}`, `{items}`) that follows the prefix.
  const rest = key.slice(prefix.length).replace(/^\{[^}]*\}/, '');
  if (rest.startsWith('recent:')) return 'recent:{userId}';
  if (rest.startsWith('interest:')) return 'interest:{userId}';
  if (rest.startsWith('rank:uvec:')) return 'rank:uvec:{userId}';
  if (rest.startsWith('item-pop:')) return 'item-pop:{itemId}';
  if (rest === 'pop-rank') return 'pop-rank';
  if (rest === 'pop-changes') return 'pop-changes';
  if (rest.startsWith('applied:')) return 'applied:{token}';
  throw new Error(`unexpected key ${key}`);
}

async function usedMemory(redis: Server): Promise<number> {
  const info = await redis.info('memory');
  const match = /^used_memory:(\d+)/m.exec(info);
  if (match?.[1] === undefined) throw new Error('INFO memory has no used_memory');
  return Number(match[1]);
}

async function ownKeys(redis: Server, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of redis.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) {
    keys.push(...page);
  }
  return keys;
}

interface KindUsage {
  keys: number;
  bytes: number;
  encoding: string;
}

/** MEMORY USAGE (all nested values counted: SAMPLES 0) of every key, summed per kind. */
async function usageByKind(
  redis: Server,
  prefix: string,
  keys: readonly string[],
): Promise<Map<KeyKind, KindUsage>> {
  const usage = new Map<KeyKind, KindUsage>();
  for (let i = 0; i < keys.length; i += 1000) {
    const page = keys.slice(i, i + 1000);
    const bytes = await Promise.all(page.map((key) => redis.memoryUsage(key, { SAMPLES: 0 })));
    for (const [j, key] of page.entries()) {
      const kind = kindOf(key, prefix);
      let entry = usage.get(kind);
      if (entry === undefined) {
        entry = { keys: 0, bytes: 0, encoding: (await redis.objectEncoding(key)) ?? '?' };
        usage.set(kind, entry);
      }
      entry.keys++;
      entry.bytes += bytes[j] ?? 0;
    }
  }
  return usage;
}

async function deleteKeys(redis: Server, keys: readonly string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) await redis.unlink(keys.slice(i, i + 1000));
}

/** The ingest path: contract validation, event rows, the online delta, one script call per chunk. */
async function applyEvents(
  writer: OnlineStateWriter,
  events: readonly Record<string, unknown>[],
): Promise<void> {
  for (let i = 0; i < events.length; i += CHUNK) {
    const rows: EventRow[] = events.slice(i, i + CHUNK).map((event) => {
      const parsed = fastUserEvent(event);
      if (parsed === undefined)
        throw new Error(`synthetic event rejected: ${JSON.stringify(event)}`);
      return toEventRow(parsed);
    });
    await writer.apply(rows, randomUUID());
  }
}

/**
 * `npm run bench -- redis-memory [--users 20000] [--events-per-user 30] [--items 5000]
 * [--cap-users 1000] [--uuid-event-ids]`. A `recent:` member is JSON `[type, itemId, ts, eventId]`;
 * Redis keeps a sorted set compact (listpack) only while every member is at most 64 bytes
 * (`zset-max-listpack-value`), so the length of event ids decides the encoding: the synthetic
 * ids fit, UUIDs do not.
 */
const benchmark: Benchmark = {
  description:
    'Redis memory of the online state per user: synthetic behaviour through the ingest write path, ' +
    'under a throwaway key prefix on REDIS_URL (deleted afterwards)',
  async run(args) {
    const users = integerFlag(args, 'users', 20_000, 1);
    const eventsPerUser = integerFlag(args, 'events-per-user', 30, 1);
    const itemCount = integerFlag(args, 'items', 5000, 1);
    const capUsers = integerFlag(args, 'cap-users', 1000, 0);
    const uuidEventIds = args.includes('--uuid-event-ids');
    const eventIdOf = (fallback: string) => (uuidEventIds ? randomUUID() : fallback);
    const prefix = `bench-redis-memory-${randomBytes(4).toString('hex')}:`;
    const config = loadConfig({ ...process.env, REDIS_KEY_PREFIX: prefix });
    const { recentCap } = config.online;
    const client = createRedisClient(config.redis, createLogger('warn'));
    await client.connect();
    const redis: Server = createClient({ url: config.redis.url });
    await redis.connect();
    const online = new OnlineStateWriter(new OnlineStateRedisRepository(client, config), config);
    const userVectors = new UserVectorCacheRepository(client, config);
    try {
      progress(`generating ${users} users × ~${eventsPerUser} events over ${itemCount} items`);
      const catalog = generateCatalog({ items: itemCount, seed: 'redis-memory' });
      // Clicks, carts and purchases come on top of the impressions (about 10 % more).
      const behaviour = generateBehaviour({
        catalog,
        users,
        impressions: Math.round((users * eventsPerUser) / 1.1),
        seed: 'redis-memory',
      });
      const events: Record<string, unknown>[] = behaviour.events.map((event) => ({
        ...event,
        eventId: eventIdOf(event.eventId),
      }));
      const interactions = events.filter((event) => event.type !== 'impression').length;

      const before = await usedMemory(redis);
      progress(`applying ${events.length} events (${interactions} interactions)`);
      await applyEvents(online, events);
      const afterOnline = await usedMemory(redis);

      progress(`caching a ${VECTOR_DIMENSION}-d interest vector for every user`);
      const random = new Random('redis-memory-vectors');
      for (let i = 0; i < behaviour.users.length; i += 1000) {
        await Promise.all(
          behaviour.users.slice(i, i + 1000).map(({ userId }) =>
            userVectors.put(userId, {
              modelVersion: '12',
              interestVersion: '3',
              vectorsGeneration: undefined,
              vector: Float32Array.from({ length: VECTOR_DIMENSION }, () => random.next() - 0.5),
            }),
          ),
        );
      }
      const afterVectors = await usedMemory(redis);

      const keys = await ownKeys(redis, prefix);
      progress(`measuring ${keys.length} keys (MEMORY USAGE … SAMPLES 0)`);
      const usage = await usageByKind(redis, prefix, keys);
      await deleteKeys(redis, keys);

      // Users at the cap: recent:{userId} holds ONLINE_RECENT_CAP members (the worst case).
      let capBytesPerUser = 0;
      let capEncoding = '-';
      if (capUsers > 0) {
        progress(`${capUsers} users with ${recentCap + 10} clicks each (recent list at the cap)`);
        const heavy: Record<string, unknown>[] = [];
        let eventId = 0;
        for (let u = 0; u < capUsers; u++) {
          for (let k = 0; k < recentCap + 10; k++) {
            heavy.push({
              eventId: eventIdOf(`ev-cap-${eventId++}`),
              type: 'click',
              userId: `cap-user-${String(u).padStart(6, '0')}`,
              itemId: catalog.items[random.int(0, catalog.items.length - 1)]?.itemId ?? 'item',
              timestamp: Date.UTC(2025, 0, 1) + k * 60_000,
            });
          }
        }
        await applyEvents(online, heavy);
        const capKeys = await ownKeys(redis, prefix);
        const capUsage = await usageByKind(redis, prefix, capKeys);
        const perUserBytes = PER_USER.reduce(
          (sum, kind) => sum + (capUsage.get(kind)?.bytes ?? 0),
          0,
        );
        capBytesPerUser = perUserBytes / capUsers;
        capEncoding = capUsage.get('recent:{userId}')?.encoding ?? '-';
        await deleteKeys(redis, capKeys);
      }
      const left = (await ownKeys(redis, prefix)).length;
      if (left > 0) throw new Error(`${left} keys under ${prefix} left behind`);

      const perKind = (kind: KeyKind) => usage.get(kind) ?? { keys: 0, bytes: 0, encoding: '-' };
      const onlinePerUser = PER_USER.reduce((sum, kind) => sum + perKind(kind).bytes, 0) / users;
      const vectorPerUser = perKind('rank:uvec:{userId}').bytes / users;
      const gibPerMillion = (bytes: number) => (bytes * 1e6) / GiB;
      const rows: Record<string, string | number>[] = [...usage.entries()].map(([kind, entry]) => ({
        key: kind,
        encoding: entry.encoding,
        keys: entry.keys,
        'bytes/key': Math.round(entry.bytes / entry.keys),
        'MiB total': entry.bytes / 1024 ** 2,
      }));
      rows.push(
        {
          key: 'per user: recent + interest',
          encoding: '',
          keys: users,
          'bytes/key': Math.round(onlinePerUser),
          'MiB total': (onlinePerUser * users) / 1024 ** 2,
        },
        {
          key: `per user at the cap (${recentCap} recent)`,
          encoding: capEncoding,
          keys: capUsers,
          'bytes/key': Math.round(capBytesPerUser),
          'MiB total': (capBytesPerUser * capUsers) / 1024 ** 2,
        },
      );
      const figures = {
        users,
        items: itemCount,
        events: events.length,
        interactionsPerUser: interactions / users,
        recentCap,
        eventIds: uuidEventIds ? 'uuid' : 'short',
        usedMemoryDeltaOnlineBytes: afterOnline - before,
        usedMemoryDeltaVectorsBytes: afterVectors - afterOnline,
        onlineBytesPerUser: Math.round(onlinePerUser),
        vectorBytesPerUser: Math.round(vectorPerUser),
        capBytesPerUser: Math.round(capBytesPerUser),
        popBytesPerItem: Math.round(
          perKind('item-pop:{itemId}').bytes / Math.max(1, perKind('item-pop:{itemId}').keys),
        ),
        gibPerMillionUsers: {
          online: gibPerMillion(onlinePerUser),
          onlineWithVector: gibPerMillion(onlinePerUser + vectorPerUser),
          atCapWithVector: gibPerMillion(capBytesPerUser + vectorPerUser),
        },
      };
      return {
        title: `Redis memory of the online state (${users.toLocaleString('en-US')} users, ${events.length.toLocaleString('en-US')} events, ${itemCount.toLocaleString('en-US')} items, ${uuidEventIds ? 'UUID' : 'short'} event ids)`,
        rows,
        figures,
        notes: [
          `used_memory grew ${((afterOnline - before) / 1024 ** 2).toFixed(1)} MiB for the online state and ${((afterVectors - afterOnline) / 1024 ** 2).toFixed(1)} MiB for the vector cache (includes other clients of a shared Redis)`,
          `GiB per million users: ${figures.gibPerMillionUsers.online.toFixed(2)} online state (~${figures.interactionsPerUser.toFixed(1)} interactions/user), ${figures.gibPerMillionUsers.onlineWithVector.toFixed(2)} with a cached interest vector, ${figures.gibPerMillionUsers.atCapWithVector.toFixed(2)} at the ${recentCap}-interaction cap with a vector`,
          'item keys (item-pop:*, pop-rank) grow with the catalog, not with users; applied:* tokens with ingest batches (kept a day)',
        ],
      };
    } finally {
      const leftovers = await ownKeys(redis, prefix).catch(() => []);
      if (leftovers.length > 0) await deleteKeys(redis, leftovers);
      await redis.close();
      await client.close();
    }
  },
};

export default benchmark;
