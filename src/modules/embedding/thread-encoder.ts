import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startThread } from '../../common/thread';
import type { EncoderThreadReply, EncoderThreadRequest } from './encoder.thread';
import type { TextEncoder } from './text-encoder';
import type { TransformersEncoderOptions } from './transformers-encoder';

interface Pending {
  resolve(vectors: Float32Array[]): void;
  reject(error: Error): void;
}

/**
 * The sentence encoder on a worker thread of its own. ONNX Runtime runs a model synchronously on
 * the calling thread (a batch of 8 long texts holds it ~0.4 s on 2 cores), which on the main
 * thread would stall every request, health probe and Kafka heartbeat meanwhile.
 */
export class ThreadTextEncoder implements TextEncoder {
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  private constructor(
    private readonly worker: Worker,
    readonly modelId: string,
    readonly dimension: number,
    onExit: (encoder: ThreadTextEncoder) => void,
  ) {
    worker.on('message', (reply: EncoderThreadReply) => {
      if (reply.type !== 'encoded' && reply.type !== 'error') return;
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.type === 'encoded') waiting?.resolve(reply.vectors);
      else waiting?.reject(new Error(reply.message));
    });
    worker.on('error', (error) => {
      this.failAll(error);
    });
    worker.on('exit', (code) => {
      this.failAll(new Error(`encoder thread exited with code ${code}`));
      onExit(this);
    });
  }

  /** `onExit` runs when the thread ends, whether closed or lost (so its owner can load anew). */
  static create(
    options: TransformersEncoderOptions,
    onExit: (encoder: ThreadTextEncoder) => void,
  ): Promise<ThreadTextEncoder> {
    const worker = startThread(path.join(__dirname, 'encoder.thread'), options);
    return new Promise((resolve, reject) => {
      const onReply = (reply: EncoderThreadReply) => {
        if (reply.type === 'ready') {
          cleanup();
          resolve(new ThreadTextEncoder(worker, reply.modelId, reply.dimension, onExit));
        } else if (reply.type === 'failed') {
          cleanup();
          void worker.terminate();
          reject(new Error(reply.message));
        }
      };
      const onError = (error: Error) => {
        cleanup();
        reject(error);
      };
      const cleanup = () => {
        worker.off('message', onReply);
        worker.off('error', onError);
      };
      worker.on('message', onReply);
      worker.on('error', onError);
    });
  }

  encode(texts: readonly string[]): Promise<Float32Array[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ type: 'encode', id, texts } satisfies EncoderThreadRequest);
    });
  }

  /** Lets the thread finish its current run and free the model (terminating mid-run aborts). */
  async dispose(): Promise<void> {
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.postMessage({ type: 'close' } satisfies EncoderThreadRequest);
    await exited;
  }

  private failAll(error: Error): void {
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }
}
