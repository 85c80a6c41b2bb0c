import path from 'node:path';
import { startThread, ThreadCalls } from '../common/thread';
import type { AppConfig } from '../config/config';
import type { ProducerThreadRequest } from './best-effort-producer.thread';
import type { PackedMessages } from './packed-messages';

/** How long `close` waits for the thread to disconnect before ending it. */
const CLOSE_WAIT_MS = 2000;

/**
 * A producer for logs that may lose messages but must neither hold nor slow their callers (the
 * served-slate log), on a worker thread of its own (best-effort-producer.thread.ts says why),
 * started on the first send and again after it was lost.
 */
export class BestEffortProducer {
  // Idle or not, it must not keep the process alive (a CLI command that logged a slate still exits).
  private readonly calls: ThreadCalls<void>;

  constructor(config: AppConfig['kafka']) {
    this.calls = new ThreadCalls(
      'best-effort producer',
      () => startThread(path.join(__dirname, 'best-effort-producer.thread'), config),
      false,
    );
  }

  /**
   * Sends `messages` to the (already prefixed) `topic` as one request; rejects when it failed.
   * Their bytes move to the thread (transferred, not copied): `messages` is empty after.
   */
  send(topic: string, messages: PackedMessages): Promise<void> {
    const { bytes } = messages;
    return this.calls.call(
      (id) => ({ type: 'send', id, topic, bytes }) satisfies ProducerThreadRequest,
      [bytes.buffer],
    );
  }

  /** Disconnects the producer and ends the thread; sends still pending fail. */
  async close(): Promise<void> {
    const worker = this.calls.release();
    if (worker === undefined) return;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage({ type: 'close' } satisfies ProducerThreadRequest);
    const timer = setTimeout(() => void worker.terminate(), CLOSE_WAIT_MS);
    await exited;
    clearTimeout(timer);
  }
}
