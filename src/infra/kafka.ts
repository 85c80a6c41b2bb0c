import { readFileSync } from 'node:fs';
import {
  Admin,
  Consumer,
  ConsumerConfig,
  Kafka,
  KafkaConfig,
  logCreator,
  logLevel,
  Partitioners,
  Producer,
  SASLOptions,
} from 'kafkajs';
import { AppConfig } from '../config/config';
import { Logger } from '../common/logger';
import { BestEffortProducer } from './best-effort-producer';

const levels: Record<logLevel, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.NOTHING]: 'debug',
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/**
 * What kafkajs says of the producer's settings, every time one starts, and is expected: its
 * retries are bounded on purpose (a send fails within about half a minute instead of hanging),
 * and what a caller's resend may duplicate is dropped where it lands (events by (event_id, ts),
 * items by their source time). Logged at debug.
 */
const EXPECTED_WARNINGS = new Set([
  'Limiting retries for the idempotent producer may invalidate EoS guarantees',
]);

/** kafkajs's log lines into `logger`, at their own level (EXPECTED_WARNINGS at debug). */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ level, log }) => {
      const { message, ...extra } = log;
      const at =
        level === logLevel.WARN && EXPECTED_WARNINGS.has(message) ? 'debug' : levels[level];
      logger[at](extra, message);
    };
}

/** How to reach the brokers: addresses, TLS and SASL (the CA file is read here, at start). */
export function brokerConnection(
  config: AppConfig['kafka'],
): Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl'> {
  const { ssl, sasl } = config;
  return {
    brokers: [...config.brokers],
    ...(ssl === null
      ? {}
      : { ssl: ssl.caFile === null ? true : { ca: [readFileSync(ssl.caFile, 'utf8')] } }),
    ...(sasl === null ? {} : { sasl: saslOptions(sasl) }),
  };
}

function saslOptions(sasl: NonNullable<AppConfig['kafka']['sasl']>): SASLOptions {
  const { username, password } = sasl;
  switch (sasl.mechanism) {
    case 'plain':
      return { mechanism: 'plain', username, password };
    case 'scram-sha-256':
      return { mechanism: 'scram-sha-256', username, password };
    case 'scram-sha-512':
      return { mechanism: 'scram-sha-512', username, password };
  }
}

/** The one Kafka client of a process: a shared producer and admin, and consumers on demand. */
export class KafkaClients {
  readonly kafka: Kafka;
  readonly producer: Producer;
  readonly admin: Admin;
  private adminConnection: Promise<void> | undefined;
  /** A separate admin that never retries, so a dead broker shows up in readiness at once. */
  private readonly probeAdmin: Admin;
  /**
   * For logs that may lose messages but must never hold or slow their caller (the served-slate
   * log): on a thread of its own, with short timeouts, so a dead broker fails a send within
   * seconds instead of retrying for as long as the shared producer.
   */
  readonly bestEffort: BestEffortProducer;
  private readonly consumers = new Set<Consumer>();
  private producerConnection: Promise<void> | undefined;

  constructor(
    private readonly config: AppConfig['kafka'],
    logger: Logger,
  ) {
    const kafkaLogger = logger.child({ component: 'kafkajs' });
    const connection = brokerConnection(config);
    this.kafka = new Kafka({
      clientId: config.clientId,
      ...connection,
      connectionTimeout: 3000,
      requestTimeout: 10_000,
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 5000 },
      logLevel: logLevel.WARN,
      logCreator: kafkaLogCreator(kafkaLogger),
    });
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      // Keyed messages land where the Java client would put them (murmur2); kafkajs's default since
      // v2, named so that it does not warn about the change at every start.
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    this.admin = this.kafka.admin();
    this.probeAdmin = new Kafka({
      clientId: `${config.clientId}-probe`,
      ...connection,
      connectionTimeout: 1000,
      retry: { retries: 0 },
      logLevel: logLevel.NOTHING,
    }).admin();
    this.bestEffort = new BestEffortProducer(config);
  }

  async probeCluster(): Promise<void> {
    try {
      await this.probeAdmin.connect();
      await this.probeAdmin.describeCluster();
    } catch (error) {
      await this.probeAdmin.disconnect().catch(() => undefined);
      throw error;
    }
  }

  /** Topic names carry the configured prefix so tests and tenants can share a broker. */
  topic(name: string): string {
    return `${this.config.topicPrefix}${name}`;
  }

  async connectedProducer(): Promise<Producer> {
    this.producerConnection ??= this.producer.connect().catch((error: unknown) => {
      this.producerConnection = undefined;
      throw error;
    });
    await this.producerConnection;
    return this.producer;
  }

  async connectedAdmin(): Promise<Admin> {
    this.adminConnection ??= this.admin.connect().catch((error: unknown) => {
      this.adminConnection = undefined;
      throw error;
    });
    await this.adminConnection;
    return this.admin;
  }

  consumer(config: ConsumerConfig): Consumer {
    const consumer = this.kafka.consumer(config);
    this.consumers.add(consumer);
    return consumer;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((consumer) => consumer.disconnect()));
    this.consumers.clear();
    await Promise.allSettled([
      this.producer.disconnect(),
      this.bestEffort.close(),
      this.admin.disconnect(),
      this.probeAdmin.disconnect(),
    ]);
  }
}
