import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startThread } from '../common/thread';
import type { AppConfig } from '../config/config';
import type { ProducerThreadReply, ProducerThreadRequest } from './best-effort-producer.thread';
import type { PackedMessages } from './packed-messages';

interface Pending {
  resolve(): void;
  reject(error: Error): void;
}

/** How long `close` waits for the thread to disconnect before ending it. */
const CLOSE_WAIT_MS = 2000;

/**
 * A producer for logs that may lose messages but must neither hold nor slow their callers (the
 * served-slate log), on a worker thread of its own (best-effort-producer.thread.ts says why),
 * started on the first send and again after it was lost.
 */
export class BestEffortProducer {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(private readonly config: AppConfig['kafka']) {}

  /**
   * Sends `messages` to the (already prefixed) `topic` as one request; rejects when it failed.
   * Their bytes move to the thread (transferred, not copied): `messages` is empty after.
   */
  send(topic: string, messages: PackedMessages): Promise<void> {
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    const { bytes } = messages;
    return new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ type: 'send', id, topic, bytes } satisfies ProducerThreadRequest, [
        bytes.buffer,
      ]);
    });
  }

  /** Disconnects the producer and ends the thread; sends still pending fail. */
  async close(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    this.worker = undefined;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.postMessage({ type: 'close' } satisfies ProducerThreadRequest);
    const timer = setTimeout(() => void worker.terminate(), CLOSE_WAIT_MS);
    await exited;
    clearTimeout(timer);
  }

  private start(): Worker {
    const worker = startThread(path.join(__dirname, 'best-effort-producer.thread'), this.config);
    // Idle, it must not keep the process alive (a CLI command that logged a slate still exits).
    worker.unref();
    worker.on('message', (reply: ProducerThreadReply) => {
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      switch (reply.type) {
        case 'sent':
          waiting?.resolve();
          break;
        case 'failed':
          waiting?.reject(new Error(reply.message));
          break;
      }
    });
    const lost = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    worker.on('error', lost);
    worker.on('exit', (code) => {
      lost(new Error(`best-effort producer thread exited with code ${code}`));
    });
    return worker;
  }
}
