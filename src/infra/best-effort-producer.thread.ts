import { parentPort, workerData } from 'node:worker_threads';
import { Kafka, logLevel, Producer } from 'kafkajs';
import type { AppConfig } from '../config/config';
import { answer, runInBackground } from '../common/thread';
import { brokerConnection } from './kafka';
import { unpackMessages } from './packed-messages';

/** A produce request to the thread: messages for one topic, sent as one Kafka request. */
export interface ProduceRequest {
  readonly type: 'send';
  readonly id: number;
  readonly topic: string;
  /** Packed keyed messages (packed-messages.ts). */
  readonly bytes: Uint8Array;
}
export type ProducerThreadRequest = ProduceRequest | { readonly type: 'close' };

/**
 * The best-effort producer's thread: kafkajs spends about 5 ns a byte and 10 µs a message of CPU
 * (record framing, a CRC32C computed in JavaScript), which on the main thread would come out of
 * every request's time. Not idempotent (so leader-only acks are allowed), short timeouts and one
 * retry: a dead broker fails a send within seconds.
 */
function run(config: AppConfig['kafka']): void {
  const port = parentPort;
  if (port === null) throw new Error('best-effort-producer.thread runs as a worker thread');
  // A flush frames and checksums a few hundred messages in one burst: on a core it shares with
  // the request thread, that burst must not hold requests back.
  runInBackground();
  const producer: Producer = new Kafka({
    clientId: `${config.clientId}-best-effort`,
    ...brokerConnection(config),
    connectionTimeout: 1000,
    requestTimeout: 5000,
    retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.NOTHING,
  }).producer({ idempotent: false, allowAutoTopicCreation: false });
  let connection: Promise<void> | undefined;

  const send = async (request: ProduceRequest): Promise<void> => {
    connection ??= producer.connect().catch((error: unknown) => {
      connection = undefined;
      throw error;
    });
    await connection;
    await producer.send({
      topic: request.topic,
      acks: 1,
      messages: unpackMessages(request.bytes),
    });
  };

  port.on('message', (request: ProducerThreadRequest) => {
    switch (request.type) {
      case 'send':
        void answer(port, request.id, () => send(request));
        break;
      case 'close':
        void producer.disconnect().finally(() => {
          port.close();
        });
        break;
    }
  });
}

run(workerData as AppConfig['kafka']);
