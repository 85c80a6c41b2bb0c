import { Client } from 'pg';
import type { AppConfig } from '../config/config';
import type { Logger } from '../common/logger';
import { waitAtMost } from '../common/timeout';

type Handler = (payload: string) => void;

const RETRY_INITIAL_MS = 200;
const RETRY_MAX_MS = 5000;
/**
 * How often the connection is asked a `SELECT 1`, and how long it may take. The connection only
 * receives, so a server host gone without a reset would leave it open and silent (TCP keepalive
 * starts after two hours), its notifications lost until then.
 */
const LIVENESS_MS = 10_000;
/**
 * How long `close` waits for the server to close its end (a server that answers does within
 * milliseconds). One that answers nothing never does, and the connection carries no work worth
 * waiting for: it then ends with the process.
 */
const END_WAIT_MS = 250;

/**
 * A dedicated PostgreSQL connection for LISTEN (a pooled client would drop subscriptions when
 * returned), one per process (PG_LISTENER) for every channel its modules listen on; InfraModule
 * closes it with the other clients. Connects on the first `listen`, reconnects with backoff and
 * re-subscribes; because notifications sent while disconnected are lost, `onReconnect` callbacks
 * let callers re-read state.
 */
export class PgListener {
  private client: Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly reconnectCallbacks = new Set<() => void>();
  private retryMs = RETRY_INITIAL_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private everConnected = false;

  constructor(
    private readonly config: AppConfig['postgres'],
    private readonly logger: Logger,
    private readonly livenessMs = LIVENESS_MS,
  ) {}

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Subscribes; resolves once LISTEN is in place, or rejects if the first connect fails (it keeps retrying). */
  async listen(channel: string, handler: Handler): Promise<void> {
    const existing = this.handlers.get(channel);
    if (existing) {
      existing.add(handler);
      return;
    }
    this.handlers.set(channel, new Set([handler]));
    if (this.client) await this.client.query(`LISTEN ${quoteIdent(channel)}`);
    else await this.connect();
  }

  onReconnect(callback: () => void): void {
    this.reconnectCallbacks.add(callback);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.livenessTimer);
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    await waitAtMost(client.end(), END_WAIT_MS, 'closing the LISTEN connection');
  }

  private connect(): Promise<void> {
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const client = new Client({
      connectionString: this.config.directUrl,
      connectionTimeoutMillis: 5000,
      application_name: 'recsys-listener',
      keepAlive: true,
      query_timeout: this.livenessMs,
    });
    client.on('notification', (message) => {
      for (const handler of this.handlers.get(message.channel) ?? []) {
        try {
          handler(message.payload ?? '');
        } catch (error) {
          this.logger.error(
            { err: error, channel: message.channel },
            'notification handler failed',
          );
        }
      }
    });
    client.on('error', (error) => {
      this.logger.warn({ err: error }, 'postgres listener connection error');
      this.drop(client);
    });
    client.on('end', () => {
      this.drop(client);
    });
    try {
      await client.connect();
      for (const channel of this.handlers.keys()) {
        await client.query(`LISTEN ${quoteIdent(channel)}`);
      }
    } catch (error) {
      await client.end().catch(() => undefined);
      this.scheduleRetry();
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    const wasReconnect = this.everConnected;
    this.everConnected = true;
    this.retryMs = RETRY_INITIAL_MS;
    this.client = client;
    this.watch(client);
    if (wasReconnect) for (const callback of this.reconnectCallbacks) callback();
  }

  /** Reconnects when `client` does not answer a `SELECT 1` within the liveness interval. */
  private watch(client: Client): void {
    clearInterval(this.livenessTimer);
    this.livenessTimer = setInterval(() => {
      client.query('SELECT 1').catch((error: unknown) => {
        if (this.client !== client) return;
        this.logger.warn(
          { err: error },
          'postgres listener connection answered no query; reconnecting',
        );
        this.drop(client);
      });
    }, this.livenessMs);
    this.livenessTimer.unref();
  }

  private drop(client: Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer !== undefined) return;
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().catch((error: unknown) => {
        this.logger.debug({ err: error }, 'postgres listener reconnect failed');
      });
    }, delay);
    this.retryTimer.unref();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function createPgListener(config: AppConfig['postgres'], logger: Logger): PgListener {
  return new PgListener(config, logger.child({ component: 'pg-listener' }));
}
