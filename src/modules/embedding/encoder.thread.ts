import { parentPort, workerData } from 'node:worker_threads';
import { TransformersEncoderOptions, TransformersTextEncoder } from './transformers-encoder';

/** Messages between ThreadTextEncoder and this thread. */
export type EncoderThreadReply =
  | { readonly type: 'ready'; readonly modelId: string; readonly dimension: number }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'encoded'; readonly id: number; readonly vectors: Float32Array[] }
  | { readonly type: 'error'; readonly id: number; readonly message: string };

export type EncoderThreadRequest =
  | { readonly type: 'encode'; readonly id: number; readonly texts: readonly string[] }
  /** Finish what was asked, free the model and end the thread (terminating it mid-run aborts). */
  | { readonly type: 'close' };

const port = parentPort;
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The encoder thread: loads the model once, then encodes what it is sent, one call at a time. */
async function serve(options: TransformersEncoderOptions): Promise<void> {
  if (port === null) throw new Error('encoder.thread runs as a worker thread');
  let encoder: TransformersTextEncoder;
  try {
    encoder = await TransformersTextEncoder.create(options);
  } catch (error) {
    port.postMessage({ type: 'failed', message: messageOf(error) } satisfies EncoderThreadReply);
    return;
  }
  let queue = Promise.resolve();
  port.on('message', (request: EncoderThreadRequest) => {
    if (request.type === 'close') {
      queue = queue.then(async () => {
        await encoder.dispose();
        port.close();
      });
      return;
    }
    queue = queue.then(async () => {
      try {
        const vectors = await encoder.encode(request.texts);
        port.postMessage(
          { type: 'encoded', id: request.id, vectors } satisfies EncoderThreadReply,
          vectors.map((vector) => vector.buffer as ArrayBuffer),
        );
      } catch (error) {
        port.postMessage({
          type: 'error',
          id: request.id,
          message: messageOf(error),
        } satisfies EncoderThreadReply);
      }
    });
  });
  port.postMessage({
    type: 'ready',
    modelId: encoder.modelId,
    dimension: encoder.dimension,
  } satisfies EncoderThreadReply);
}

void serve(workerData as TransformersEncoderOptions);
