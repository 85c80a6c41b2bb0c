import { Inject, Injectable } from '@nestjs/common';
import type { BestEffortMessage } from '../../infra/best-effort-producer';
import { KafkaClients } from '../../infra/kafka';
import { KAFKA } from '../../infra/tokens';
import { MAX_SERVED_SLATE_BYTES, SERVED_LOG_TOPICS } from './served-slate.codec';

/** One encoded slate: keyed by user id, so a user's slates keep their order on one partition. */
export type KeyedMessage = BestEffortMessage;

/** Where the recorder sends a flush; the narrow seam tests replace (test/support/fakes). */
export interface ServedSlatePublisher {
  /** Resolves once the broker has them all; rejects when it could not (nothing is retried). */
  publish(messages: readonly KeyedMessage[]): Promise<void>;
}
export const SERVED_SLATE_PUBLISHER = Symbol('SERVED_SLATE_PUBLISHER');

/**
 * Most bytes per produce request. kafkajs puts a request's messages for one partition into one
 * record batch, which the broker refuses above `message.max.bytes` (1 MiB by default): keeping the
 * whole request under that keeps every batch under it, whatever the partitioning.
 */
const MAX_REQUEST_BYTES = MAX_SERVED_SLATE_BYTES;

/** Messages in groups under MAX_REQUEST_BYTES (a key counts 3 bytes a character, at most UTF-8's). */
function requestsOf(messages: readonly KeyedMessage[]): KeyedMessage[][] {
  const requests: KeyedMessage[][] = [];
  let current: KeyedMessage[] = [];
  let bytes = 0;
  for (const message of messages) {
    const size = message.key.length * 3 + Buffer.byteLength(message.value);
    if (current.length > 0 && bytes + size > MAX_REQUEST_BYTES) {
      requests.push(current);
      current = [];
      bytes = 0;
    }
    current.push(message);
    bytes += size;
  }
  if (current.length > 0) requests.push(current);
  return requests;
}

/** The served-slate log's producing: the best-effort producer (its own thread, leader acks). */
@Injectable()
export class ServedLogKafkaRepository implements ServedSlatePublisher {
  constructor(@Inject(KAFKA) private readonly kafka: KafkaClients) {}

  async publish(messages: readonly KeyedMessage[]): Promise<void> {
    const topic = this.kafka.topic(SERVED_LOG_TOPICS.slates);
    // Sequential: a second request waits for the first, so a slow broker is felt by the
    // recorder's buffer (bounded, counted) instead of as requests piling up here.
    for (const request of requestsOf(messages)) {
      await this.kafka.bestEffort.send(topic, request);
    }
  }
}
