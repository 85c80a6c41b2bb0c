import path from 'node:path';
import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import type { BertLayerWeights } from '../../common/bert-layer';
import type { TokenStates } from '../../common/token-states';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { EncoderOnnx, readEncoderOnnx, withTopLayerWeights } from './encoder-onnx';
import { EncoderStates } from './encoder-states';
import { MicroBatcher } from './micro-batcher';

/** Final token states of texts, through the encoder a model version reads. */
export interface TokenStateEncoder {
  /** A catalog pass's texts, in one call. */
  encode(texts: readonly string[]): Promise<TokenStates[]>;
  /**
   * A request's text: shares model runs with concurrent requests, bounded like the service
   * encoder's on-demand queue (EMBEDDING_ONDEMAND_*; RESOURCE_EXHAUSTED beyond it).
   */
  encodeOnDemand(text: string, signal?: AbortSignal): Promise<TokenStates>;
}

/** The configured encoder's folder: its fp32 ONNX file, config and tokenizer. */
export function encoderFolder(embedding: AppConfig['embedding']): string {
  return path.join(path.resolve(embedding.modelDir), embedding.model);
}

/** Sessions kept at once: the active version, experiment arms, the one loading. */
const MAX_SESSIONS = 4;
/** An evicted session may still be running a request's or a catalog pass's batch. */
const RELEASE_GRACE_MS = 60_000;

interface Session {
  readonly states: Promise<EncoderStates>;
  readonly onDemand: MicroBatcher<TokenStates>;
  usedAt: number;
}

/**
 * ONNX Runtime sessions of the fp32 encoder for models with token attention, one per set of top
 * layers: the pretrained ones, or a version's own fine-tuned copy written into the graph
 * (encoder-onnx.ts withTopLayerWeights), so serving runs a fine-tuned version's layers natively
 * instead of in tfjs. Texts are cut at the version's token limit before encoding, as training
 * cut them, so every layer sees the same tokens.
 */
@Injectable()
export class TokenEncoders implements OnApplicationShutdown {
  private onnx: EncoderOnnx | undefined;
  private readonly sessions = new Map<string, Session>();
  private readonly releases = new Set<NodeJS.Timeout>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /**
   * The encoder with `topLayers` (bottom first; none: the pretrained encoder) as its top layers;
   * `key` names those weights (a version id), so each set is written into a graph once. A call
   * after the session was evicted opens it again.
   */
  forLayers(
    key: string,
    topLayers: readonly BertLayerWeights[],
    maxTokens: number,
  ): TokenStateEncoder {
    const id = `${topLayers.length === 0 ? 'pretrained' : key}:${String(maxTokens)}`;
    const session = () => this.session(id, topLayers, maxTokens);
    session();
    return {
      encode: async (texts) => (await (await session().states).encode(texts))[0],
      encodeOnDemand: (text, signal) => session().onDemand.submit(text, signal),
    };
  }

  // The last shutdown phase: catalog follows and requests stop before it.
  async onApplicationShutdown(): Promise<void> {
    for (const timer of this.releases) clearTimeout(timer);
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(all.map(async (session) => (await session.states).dispose()));
  }

  private session(id: string, topLayers: readonly BertLayerWeights[], maxTokens: number): Session {
    let session = this.sessions.get(id);
    if (session === undefined) {
      const onnx = this.encoderOnnx();
      const states = EncoderStates.create(withTopLayerWeights(onnx, topLayers), {
        layers: [onnx.shape.layers],
        threads: this.config.embedding.threads,
        maxTokens,
      });
      // A failed session is not kept: the next call tries again.
      states.catch(() => this.sessions.delete(id));
      const { onDemandMaxBatch, onDemandMaxQueue, onDemandMaxWaitMs } = this.config.embedding;
      const onDemand = new MicroBatcher<TokenStates>(
        async (texts) => (await (await states).encode(texts))[0],
        { maxBatch: onDemandMaxBatch, maxQueued: onDemandMaxQueue, maxWaitMs: onDemandMaxWaitMs },
      );
      session = { states, onDemand, usedAt: performance.now() };
      this.sessions.set(id, session);
      this.evict();
    }
    session.usedAt = performance.now();
    return session;
  }

  private encoderOnnx(): EncoderOnnx {
    this.onnx ??= readEncoderOnnx(encoderFolder(this.config.embedding));
    return this.onnx;
  }

  private evict(): void {
    while (this.sessions.size > MAX_SESSIONS) {
      const [oldest] = [...this.sessions].sort((a, b) => a[1].usedAt - b[1].usedAt)[0];
      const session = this.sessions.get(oldest);
      this.sessions.delete(oldest);
      const timer = setTimeout(() => {
        this.releases.delete(timer);
        void session?.states.then((states) => states.dispose()).catch(() => undefined);
      }, RELEASE_GRACE_MS);
      timer.unref();
      this.releases.add(timer);
    }
  }
}
