import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { AppModule } from '../../src/app.module';
import { createLogger } from '../../src/common/logger';
import type { AppConfig } from '../../src/config/config';
import { ModelSwapService } from '../../src/modules/serving/model-swap.service';
import {
  LOADED_MODELS,
  LoadedModel,
  LoadedModels,
  MODEL_LOADER,
  ModelLoader,
} from '../../src/modules/serving/served-model';
import { VECTOR_INDEX_BUILDER } from '../../src/modules/serving/retrieval';
import type { VectorIndexBuilder } from '../../src/modules/serving/retrieval';
import { MODEL_TRAINER, ModelTrainer } from '../../src/modules/training/model-trainer';
import { configureServer, fastifyAdapter } from '../../src/server';

/**
 * The served model of a test app: the registry's active version (as the model-swap service loads
 * it) unless a test pins a model of its own, which replaces the answer in one assignment like a
 * swap does.
 */
export class PinnedModels implements LoadedModels {
  private pinned: { readonly model: LoadedModel | undefined } | undefined;
  private registry: LoadedModels | undefined;
  private readonly listeners: (() => void)[] = [];

  constructor(initial?: { model: LoadedModel | undefined }) {
    this.pinned = initial;
  }

  attach(registry: LoadedModels): this {
    this.registry = registry;
    // Arm versions follow the registry even while the active one is pinned.
    registry.onChange(() => {
      this.changed();
    });
    return this;
  }

  current(): LoadedModel | undefined {
    return this.pinned ? this.pinned.model : this.registry?.current();
  }

  others(): ReadonlyMap<string, LoadedModel> {
    return this.registry?.others() ?? new Map<string, LoadedModel>();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** Versions the registry loads are prepared; a pinned one is served as it is. */
  beforeServing(prepare: (loaded: LoadedModel) => Promise<void>): void {
    this.registry?.beforeServing(prepare);
  }

  /** Serves `model` (undefined: none) whatever the registry says, until `unpin`. */
  pin(model: LoadedModel | undefined): void {
    this.pinned = { model };
    this.changed();
  }

  /** Back to the registry's active version. */
  unpin(): void {
    this.pinned = undefined;
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

export interface TestSeams {
  /** Overrides `config.role`. */
  readonly role?: AppConfig['role'];
  readonly trainer?: ModelTrainer;
  readonly loader?: ModelLoader;
  /** The served model, pinnable; without it the registry's active version is served. */
  readonly models?: PinnedModels;
  /** Builds serving's ANN indexes (HNSW without it). */
  readonly indexBuilder?: VectorIndexBuilder;
}

/** The service as `createServer` builds it for `config`, with the given seams replaced; ready. */
export async function startApp(
  config: AppConfig,
  seams: TestSeams = {},
): Promise<NestFastifyApplication> {
  const effective = seams.role === undefined ? config : { ...config, role: seams.role };
  const logger = createLogger(effective.logLevel);
  let builder = Test.createTestingModule({ imports: [AppModule.forRole(effective, logger)] });
  if (seams.trainer) builder = builder.overrideProvider(MODEL_TRAINER).useValue(seams.trainer);
  if (seams.loader) builder = builder.overrideProvider(MODEL_LOADER).useValue(seams.loader);
  if (seams.indexBuilder) {
    builder = builder.overrideProvider(VECTOR_INDEX_BUILDER).useValue(seams.indexBuilder);
  }
  const { models } = seams;
  if (models) {
    builder = builder.overrideProvider(LOADED_MODELS).useFactory({
      factory: (swap: ModelSwapService) => models.attach(swap),
      inject: [ModelSwapService],
    });
  }
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(fastifyAdapter(logger), {
    logger: false,
  });
  configureServer(app, effective, logger);
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}
