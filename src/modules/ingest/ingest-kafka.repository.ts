import { Inject, Injectable, Optional } from '@nestjs/common';
import { Consumer, IHeaders, KafkaJSProtocolError, KafkaMessage } from 'kafkajs';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { KAFKA } from '../../infra/tokens';
import { KafkaClients } from '../../infra/kafka';
import { INGEST_FAULTS } from './ingest.faults';
import type { IngestFaults } from './ingest.faults';

/** One consumed message, without kafkajs types. */
export interface SourceMessage {
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
  readonly offset: string;
  /** Kafka message timestamp (ms since epoch, as a string). */
  readonly timestamp: string;
}

export interface SourceBatch {
  readonly topic: string;
  readonly partition: number;
  readonly messages: readonly SourceMessage[];
}

export interface BatchControl {
  /** False once the consumer is stopping or lost the partition: give up, commit nothing. */
  isRunning(): boolean;
  heartbeat(): Promise<void>;
}

/** Stores a batch; resolving means "safely stored": its offsets are committed right after. */
export type BatchHandler = (batch: SourceBatch, control: BatchControl) => Promise<void>;

/** Thrown by handlers that gave up because the consumer is stopping. */
export class ConsumerStopping extends Error {
  constructor() {
    super('consumer stopping');
    this.name = 'ConsumerStopping';
  }
}

export interface OutgoingMessage {
  readonly key: Buffer | string | null;
  readonly value: Buffer | string | null;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface ConsumerHandle {
  stop(): Promise<void>;
}

function headersOf(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value === undefined) continue;
    const first = Array.isArray(value) ? value.at(0) : value;
    if (first !== undefined) out[name] = first.toString();
  }
  return out;
}

function toSource(message: KafkaMessage): SourceMessage {
  return {
    key: message.key,
    value: message.value,
    headers: headersOf(message.headers),
    offset: message.offset,
    timestamp: message.timestamp,
  };
}

/** The ingest module's Kafka: consumer groups with manual commits, and producing. */
@Injectable()
export class IngestKafkaRepository {
  constructor(
    @Inject(KAFKA) private readonly kafka: KafkaClients,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Optional() @Inject(INGEST_FAULTS) private readonly faults?: IngestFaults,
  ) {}

  topic(name: string): string {
    return this.kafka.topic(name);
  }

  /**
   * Consumes `topic` (prefixed) in group `groupId` (prefixed too, so tenants never share a group).
   * Each fetched batch is cut into chunks of at most `ingest.batchSize`; a chunk's offsets are
   * committed only after `handler` resolved for it. `onStopped` hears of a consumer that stopped
   * for good (an error kafkajs does not restart after).
   */
  async startConsumer(
    options: { topic: string; groupId: string; concurrency: number },
    handler: BatchHandler,
    onStopped: (error: Error) => void,
  ): Promise<ConsumerHandle> {
    const topic = this.kafka.topic(options.topic);
    const consumer: Consumer = this.kafka.consumer({
      groupId: `${this.config.kafka.topicPrefix}${options.groupId}`,
      maxBytesPerPartition: this.config.ingest.fetchMaxBytesPerPartition,
      maxBytes: this.config.ingest.fetchMaxBytesPerPartition * 4,
      sessionTimeout: this.config.ingest.sessionTimeoutMs,
      heartbeatInterval: Math.min(3000, Math.floor(this.config.ingest.sessionTimeoutMs / 3)),
      maxWaitTimeInMs: 500,
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
    } catch (error) {
      // The caller retries with a new consumer: this one must not stay connected meanwhile.
      await consumer.disconnect().catch(() => undefined);
      throw isUnknownTopic(error)
        ? new Error(`topic ${topic} does not exist (\`node dist/main.js topics\` creates it)`, {
            cause: error,
          })
        : error;
    }
    // kafkajs restarts a consumer after retriable errors only; after any other it stays stopped.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) onStopped(payload.error);
    });
    const size = this.config.ingest.batchSize;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: options.concurrency,
      eachBatch: async (payload) => {
        const { batch } = payload;
        const control: BatchControl = {
          isRunning: () => payload.isRunning() && !payload.isStale(),
          heartbeat: () => payload.heartbeat(),
        };
        for (let start = 0; start < batch.messages.length; start += size) {
          if (!control.isRunning()) return;
          const chunk = batch.messages.slice(start, start + size);
          const last = chunk.at(-1)?.offset;
          if (last === undefined) return;
          try {
            await handler(
              { topic: batch.topic, partition: batch.partition, messages: chunk.map(toSource) },
              control,
            );
          } catch (error) {
            if (error instanceof ConsumerStopping) return;
            throw error;
          }
          await this.faults?.afterStore?.(batch.topic, batch.partition, last);
          await consumer.commitOffsets([
            {
              topic: batch.topic,
              partition: batch.partition,
              offset: (BigInt(last) + 1n).toString(),
            },
          ]);
          payload.resolveOffset(last);
          await payload.heartbeat();
        }
      },
    });
    return {
      stop: async () => {
        await consumer.disconnect();
      },
    };
  }

  /**
   * Messages of `topic` (prefixed) not yet committed by group `groupId`, per partition: the
   * partition's end offset minus the group's committed one (the whole partition when the group
   * committed nothing). Read from the broker, so a consumer that is stuck still shows its lag.
   */
  async consumerLag(groupId: string, topic: string): Promise<Map<number, number>> {
    const prefixed = this.kafka.topic(topic);
    const admin = await this.kafka.connectedAdmin();
    const [ends, committed] = await Promise.all([
      admin.fetchTopicOffsets(prefixed),
      admin.fetchOffsets({
        groupId: `${this.config.kafka.topicPrefix}${groupId}`,
        topics: [prefixed],
      }),
    ]);
    const done = new Map(
      (committed.at(0)?.partitions ?? []).map((entry) => [entry.partition, Number(entry.offset)]),
    );
    return new Map(
      ends.map((end) => {
        const at = done.get(end.partition) ?? -1;
        const from = at < 0 ? Number(end.low) : at;
        return [end.partition, Math.max(0, Number(end.high) - from)];
      }),
    );
  }

  /** Sends and waits for all in-sync replicas to have the messages. */
  async produce(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const producer = await this.kafka.connectedProducer();
    await producer.send({
      topic: this.kafka.topic(topic),
      acks: -1,
      messages: messages.map((message) => ({
        key: message.key,
        value: message.value,
        headers: message.headers ? { ...message.headers } : undefined,
      })),
    });
  }
}

/** kafkajs's answer for a topic the cluster does not have (auto-creation off). */
function isUnknownTopic(error: unknown): boolean {
  return error instanceof KafkaJSProtocolError && error.type === 'UNKNOWN_TOPIC_OR_PARTITION';
}
