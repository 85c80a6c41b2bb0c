import { Inject, Injectable } from '@nestjs/common';
import { KafkaClients } from '../../infra/kafka';
import type { PackedMessages } from '../../infra/packed-messages';
import { KAFKA } from '../../infra/tokens';
import { SERVED_LOG_TOPICS } from './served-slate.codec';

/** Where the recorder sends a flush; the narrow seam tests replace (test/support/fakes). */
export interface ServedSlatePublisher {
  /**
   * Sends encoded slates keyed by user id (a user's slates keep their order on one partition) as
   * one Kafka request; resolves once the broker has them all, rejects when it could not (nothing
   * is retried).
   */
  publish(slates: PackedMessages): Promise<void>;
}
export const SERVED_SLATE_PUBLISHER = Symbol('SERVED_SLATE_PUBLISHER');

/** The served-slate log's producing: the best-effort producer (its own thread, leader acks). */
@Injectable()
export class ServedLogKafkaRepository implements ServedSlatePublisher {
  constructor(@Inject(KAFKA) private readonly kafka: KafkaClients) {}

  publish(slates: PackedMessages): Promise<void> {
    return this.kafka.bestEffort.send(this.kafka.topic(SERVED_LOG_TOPICS.slates), slates);
  }
}
