import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, createCluster, RESP_TYPES } from 'redis';
import type { RedisFunctions, RedisModules, RedisScripts } from 'redis';
import { AppConfig } from '../config/config';
import { Logger } from '../common/logger';
import { keySlot } from '../common/key-slot';

type StandaloneClient = ReturnType<typeof createClient>;
type ClusterClient = ReturnType<typeof createCluster>;

/**
 * The commands repositories may send: each names its keys, so a cluster routes it to the slot's
 * master (a multi-key command's keys must then share a slot: see docs/operations/scaling.md).
 */
export type RedisCommands = Pick<
  StandaloneClient,
  | 'get'
  | 'mGet'
  | 'hGet'
  | 'hmGet'
  | 'hSet'
  | 'zRange'
  | 'xAdd'
  | 'xLen'
  | 'xRange'
  | 'xRevRange'
  | 'unlink'
  | 'evalSha'
  | 'eval'
>;

const BINARY = { [RESP_TYPES.BLOB_STRING]: Buffer };
/** Commands whose string replies come back as Buffers. */
export type BinaryRedisCommands = Pick<
  ReturnType<typeof createClient<RedisModules, RedisFunctions, RedisScripts, 2, typeof BINARY>>,
  'hmGet'
>;

/** A Lua script, sent by its SHA1 once Redis (each master of a cluster) has it. */
export class RedisScript {
  readonly sha1: string;

  constructor(readonly source: string) {
    this.sha1 = createHash('sha1').update(source).digest('hex');
  }
}

const CLUSTER_RETRY_MS = 2000;
/** The longest gap between two liveness PINGs of a connection. */
const LIVENESS_PING_MAX_MS = 1000;

/** One connection to one server: the standalone client, or a cluster master's. */
interface ServerConnection {
  readonly isReady: boolean;
  ping(): Promise<unknown>;
  destroy(): void;
  connect(): Promise<unknown>;
}

/**
 * The one Redis connection of a process: a standalone server (`REDIS_URL`) or a Redis Cluster
 * (`REDIS_CLUSTER_NODES`). Repositories send key-routed commands through `commands`; what a
 * cluster does differently (scans and pings of every master, deleting keys of many slots) is here.
 */
export class RedisClient {
  readonly commands: RedisCommands;
  readonly binary: BinaryRedisCommands;
  /** Aborted by close/destroy: stops a cluster's connect retries. */
  private readonly closing = new AbortController();
  /** When each connection's unanswered liveness PING was sent. */
  private readonly pingsSent = new Map<ServerConnection, number>();
  private readonly livenessTimer: NodeJS.Timeout;

  private constructor(
    private readonly target:
      | { readonly mode: 'standalone'; readonly client: StandaloneClient }
      | { readonly mode: 'cluster'; readonly client: ClusterClient },
    private readonly logger: Logger,
    private readonly pingTimeoutMs: number,
  ) {
    this.commands = target.client;
    this.binary = target.client.withTypeMapping(BINARY);
    this.livenessTimer = setInterval(
      () => {
        this.checkLiveness();
      },
      Math.min(LIVENESS_PING_MAX_MS, pingTimeoutMs / 2),
    );
    this.livenessTimer.unref();
  }

  static create(config: AppConfig['redis'], logger: Logger): RedisClient {
    // Fail fast while disconnected so callers can degrade instead of queueing forever.
    const connection = {
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 2000,
        reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000),
      },
    };
    let lastLogged = 0;
    const onError = (error: unknown) => {
      const now = Date.now();
      if (now - lastLogged > 5000) {
        lastLogged = now;
        logger.warn({ err: error }, 'redis connection error');
      }
    };
    if (config.clusterNodes === null) {
      const client = createClient({ url: config.url, ...connection });
      client.on('error', onError);
      return new RedisClient({ mode: 'standalone', client }, logger, config.pingTimeoutMs);
    }
    // Credentials and TLS of REDIS_URL apply to every node; its host is not used.
    const url = new URL(config.url);
    const tls = url.protocol === 'rediss:';
    const client = createCluster({
      rootNodes: config.clusterNodes.map(({ host, port }) => ({ socket: { host, port, tls } })),
      defaults: {
        ...connection,
        socket: { ...connection.socket, tls },
        ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
        ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
      },
    });
    client.on('error', onError);
    client.on('node-error', onError);
    return new RedisClient({ mode: 'cluster', client }, logger, config.pingTimeoutMs);
  }

  get isOpen(): boolean {
    return this.target.client.isOpen;
  }

  /** Connected (every master, for a cluster): false sends readers to their fallback at once. */
  get isReady(): boolean {
    const { target } = this;
    if (target.mode === 'standalone') return target.client.isReady;
    const masters = target.client.masters;
    return (
      target.client.isOpen &&
      masters.length > 0 &&
      masters.every((master) => master.client?.isReady === true)
    );
  }

  /**
   * Resolves once connected. A standalone client retries by itself; a cluster whose nodes do not
   * answer yet retries the topology discovery every 2 s, until connected or closed.
   */
  async connect(): Promise<void> {
    const { target } = this;
    if (target.mode === 'standalone') {
      await target.client.connect();
      return;
    }
    for (;;) {
      try {
        await target.client.connect();
        return;
      } catch (error) {
        if (this.closing.signal.aborted) throw error;
        this.logger.debug({ err: error }, 'redis cluster not reachable; retrying');
      }
      // Rejects once closed.
      await sleep(CLUSTER_RETRY_MS, undefined, { signal: this.closing.signal });
    }
  }

  /** Waits for sent commands, then disconnects. */
  async close(): Promise<void> {
    this.closing.abort();
    clearInterval(this.livenessTimer);
    await this.target.client.close();
  }

  /** Disconnects at once (also stops a cluster's connect retries). */
  destroy(): void {
    this.closing.abort();
    clearInterval(this.livenessTimer);
    if (this.target.mode === 'standalone' || this.target.client.isOpen)
      this.target.client.destroy();
  }

  /**
   * The server that answers `key`: its slot's master on a cluster (its address; '' while the
   * cluster does not know its masters), '' for a standalone server. A reader that finds one
   * server slow can then skip that one only.
   */
  serverOf(key: string): string {
    const { target } = this;
    if (target.mode === 'standalone') return '';
    return target.client.slots[keySlot(key)]?.master.address ?? '';
  }

  /**
   * PINGs every connection that has none unanswered, and reconnects each whose PING went
   * unanswered for REDIS_PING_TIMEOUT_MS. A server's host gone without a reset (a crash, a
   * partition) leaves its connection open and silent: without this its commands would wait until
   * the kernel gives up on it (about 15 minutes), and every caller with them (ingest's online-state
   * writes, the replica's copies, shutdown). Reconnecting fails them, and their callers fall back
   * as on any Redis error.
   */
  private checkLiveness(): void {
    const now = performance.now();
    for (const connection of this.serverConnections()) {
      const sent = this.pingsSent.get(connection);
      if (sent !== undefined) {
        if (now - sent > this.pingTimeoutMs) {
          this.pingsSent.delete(connection);
          this.reconnect(connection);
        }
        continue;
      }
      if (!connection.isReady) continue;
      this.pingsSent.set(connection, now);
      const settled = () => {
        if (this.pingsSent.get(connection) === now) this.pingsSent.delete(connection);
      };
      connection.ping().then(settled, settled);
    }
  }

  private serverConnections(): ServerConnection[] {
    const { target } = this;
    if (target.mode === 'standalone') return [target.client];
    return target.client.masters.flatMap((master) =>
      master.client === undefined ? [] : [master.client],
    );
  }

  private reconnect(connection: ServerConnection): void {
    if (this.closing.signal.aborted) return;
    this.logger.warn(
      { pingTimeoutMs: this.pingTimeoutMs },
      'redis connection answered no PING in REDIS_PING_TIMEOUT_MS; reconnecting (its pending commands fail)',
    );
    try {
      connection.destroy();
    } catch {
      // Closed meanwhile (a cluster dropping the node): nothing to reconnect.
      return;
    }
    connection.connect().catch((error: unknown) => {
      this.logger.debug({ err: error }, 'redis reconnect after a silent connection failed');
    });
  }

  /** PING (every master of a cluster). */
  async ping(): Promise<void> {
    const { target } = this;
    if (target.mode === 'standalone') {
      await target.client.ping();
      return;
    }
    const cluster = connected(target.client);
    await Promise.all(
      cluster.masters.map(async (master) => (await cluster.nodeClient(master)).ping()),
    );
  }

  /**
   * Pages of the keys matching `match`, from every master of a cluster, or, with `slotOf`, only
   * from the master of that key's slot (the pattern names keys of that one hash tag).
   */
  async *scan(match: string, options: { count: number; slotOf?: string }): AsyncIterable<string[]> {
    const { target } = this;
    const scanOptions = { MATCH: match, COUNT: options.count };
    if (target.mode === 'standalone') {
      yield* target.client.scanIterator(scanOptions);
      return;
    }
    const cluster = connected(target.client);
    const owner =
      options.slotOf === undefined ? undefined : cluster.slots[keySlot(options.slotOf)]?.master;
    const masters = owner === undefined ? cluster.masters : [owner];
    for (const master of masters) {
      yield* (await cluster.nodeClient(master)).scanIterator(scanOptions);
    }
  }

  /** UNLINKs `keys`, of any slots (one command per slot on a cluster); returns how many existed. */
  async unlinkAll(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    if (this.target.mode === 'standalone') return this.target.client.unlink([...keys]);
    const bySlot = new Map<number, string[]>();
    for (const key of keys) {
      const slot = keySlot(key);
      const group = bySlot.get(slot);
      if (group === undefined) bySlot.set(slot, [key]);
      else group.push(key);
    }
    const counts = await Promise.all(
      [...bySlot.values()].map((group) => this.commands.unlink(group)),
    );
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /** Runs `script` by SHA1, sending its source once where the server lacks it (NOSCRIPT). */
  async runScript(
    script: RedisScript,
    keys: readonly string[],
    args: readonly string[],
  ): Promise<unknown> {
    const options = { keys: [...keys], arguments: [...args] };
    try {
      return await this.commands.evalSha(script.sha1, options);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.commands.eval(script.source, options);
    }
  }
}

/**
 * The cluster, once it knows its masters. The client is open from the start of its topology
 * discovery, before it knows any: a ping or scan of every master would pass on none.
 */
function connected(cluster: ClusterClient): ClusterClient {
  if (!cluster.isOpen || cluster.masters.length === 0)
    throw new Error('redis cluster not connected');
  return cluster;
}

export function createRedisClient(config: AppConfig['redis'], logger: Logger): RedisClient {
  return RedisClient.create(config, logger);
}
