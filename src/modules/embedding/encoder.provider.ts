import type { AppConfig } from '../../config/config';
import type { Logger } from '../../common/logger';
import type { TextEncoder } from './text-encoder';
import { ThreadTextEncoder } from './thread-encoder';
import { encoderIdFor } from './transformers-encoder';

/**
 * The process's text encoder, loaded on first use (a model load costs a second of CPU and ~100-300
 * MB, which roles and tests that never encode should not pay). A failed load is retried by the
 * next caller. The encoder id is known before loading, so queries need not wait for the model.
 */
export class TextEncoderProvider {
  private loading: Promise<TextEncoder> | undefined;
  private loaded: TextEncoder | undefined;

  constructor(
    readonly encoderId: string,
    private readonly load: () => Promise<TextEncoder>,
    private readonly logger?: Logger,
  ) {}

  static fromConfig(config: AppConfig, logger: Logger): TextEncoderProvider {
    const options = {
      model: config.embedding.model,
      modelDir: config.embedding.modelDir,
      quantized: config.embedding.quantized,
      threads: config.embedding.threads,
      batchSize: config.embedding.batchSize,
      allowRemote: config.embedding.allowRemote,
    };
    const provider: TextEncoderProvider = new TextEncoderProvider(
      encoderIdFor(options),
      () =>
        ThreadTextEncoder.create(options, (gone) => {
          provider.forget(gone);
        }),
      logger.child({ component: 'text-encoder' }),
    );
    return provider;
  }

  get(): Promise<TextEncoder> {
    this.loading ??= this.startLoad();
    return this.loading;
  }

  get isLoaded(): boolean {
    return this.loaded !== undefined;
  }

  /** `encoder` is gone (its thread ended): the next caller loads a new one. */
  forget(encoder: TextEncoder): void {
    if (this.loaded !== encoder) return;
    this.loaded = undefined;
    this.loading = undefined;
  }

  async onApplicationShutdown(): Promise<void> {
    const encoder = this.loaded;
    if (encoder) this.forget(encoder);
    if (encoder && 'dispose' in encoder && typeof encoder.dispose === 'function') {
      await (encoder as { dispose(): Promise<void> }).dispose();
    }
  }

  private async startLoad(): Promise<TextEncoder> {
    const started = performance.now();
    try {
      const encoder = await this.load();
      if (encoder.modelId !== this.encoderId) {
        throw new Error(`encoder reports id ${encoder.modelId}, expected ${this.encoderId}`);
      }
      this.loaded = encoder;
      this.logger?.info(
        {
          encoderId: encoder.modelId,
          dimension: encoder.dimension,
          ms: Math.round(performance.now() - started),
        },
        'text encoder loaded',
      );
      return encoder;
    } catch (error) {
      this.loading = undefined;
      throw error;
    }
  }
}
