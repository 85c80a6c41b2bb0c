import { NestFastifyApplication, FastifyAdapter } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { AppModule } from '../../src/app.module';
import { createLogger } from '../../src/common/logger';
import type { AppConfig } from '../../src/config/config';
import {
  MODEL_LOADER,
  MODEL_TRAINER,
  ModelLoader,
  ModelMetrics,
  ModelTrainer,
  TimeWindow,
  TrainRequest,
  TrainResult,
} from '../../src/modules/registry/registry.types';

/** A fake model: its quality is the AUC it scores on any window. */
interface FakeModel {
  readonly kind: 'fake-model';
  readonly quality: number;
  /** The fake loader refuses it, like a corrupt or incompatible artifact would be. */
  readonly unloadable?: boolean;
  readonly nonce: number;
}

let nonce = 0;

export function fakeArtifact(quality: number, unloadable = false): Buffer {
  nonce++;
  const model: FakeModel = { kind: 'fake-model', quality, unloadable, nonce };
  return Buffer.from(JSON.stringify(model));
}

function parse(artifact: Buffer): FakeModel {
  const model = JSON.parse(artifact.toString('utf8')) as Partial<FakeModel>;
  if (model.kind !== 'fake-model') throw new Error('not a fake model');
  return model as FakeModel;
}

export const VALIDATION: TimeWindow = {
  from: new Date('2025-01-20T00:00:00Z'),
  to: new Date('2025-01-21T00:00:00Z'),
};

/** Trains instantly (or when released) to the quality queued next; evaluates by that quality. */
export class FakeTrainer implements ModelTrainer {
  readonly encoderId = 'fake-encoder:fp32';
  readonly requests: TrainRequest[] = [];
  readonly evaluated: { quality: number; window: TimeWindow }[] = [];
  private readonly queued: { quality: number; diverged?: string; unloadable?: boolean }[] = [];
  private gate: Promise<void> | undefined;
  private release: (() => void) | undefined;

  /** The next training run produces this. */
  next(quality: number, options: { diverged?: string; unloadable?: boolean } = {}): this {
    this.queued.push({ quality, ...options });
    return this;
  }

  /** Training blocks until `open()`: keeps a run in progress. */
  hold(): void {
    this.gate = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  open(): void {
    this.release?.();
    this.gate = undefined;
  }

  async train(request: TrainRequest): Promise<TrainResult> {
    this.requests.push(request);
    request.onProgress(0.25);
    if (this.gate) {
      const { signal } = request;
      await Promise.race([
        this.gate,
        new Promise((_, reject) => {
          signal.addEventListener('abort', () => {
            reject(new Error('training aborted'));
          });
        }),
      ]);
    }
    const spec = this.queued.shift() ?? { quality: 0.7 };
    request.onProgress(1);
    const metrics: ModelMetrics = { auc: spec.quality, mrr: spec.quality / 2, ndcg10: 0.3 };
    return {
      artifact: fakeArtifact(spec.quality, spec.unloadable),
      metrics,
      validation: VALIDATION,
      trainWindow: { from: new Date('2025-01-01T00:00:00Z'), to: VALIDATION.from },
      trainSamples: 1000,
      validSamples: 100,
      hyperparameters: { epochs: 1, mode: request.mode },
      backend: 'fake',
      encoderId: this.encoderId,
      ...(spec.diverged === undefined ? {} : { diverged: spec.diverged }),
    };
  }

  evaluate(artifact: Buffer, window: TimeWindow): Promise<ModelMetrics> {
    const { quality } = parse(artifact);
    this.evaluated.push({ quality, window });
    return Promise.resolve({ auc: quality, mrr: quality / 2, ndcg10: 0.3 });
  }
}

/** Loads fake artifacts; records what it loaded; refuses `unloadable` ones. */
export class FakeLoader implements ModelLoader<FakeModel> {
  readonly loaded: string[] = [];

  load(artifact: Buffer, version: { id: string }): Promise<FakeModel> {
    const model = parse(artifact);
    if (model.unloadable === true) {
      return Promise.reject(new Error(`fake model of version ${version.id} is unloadable`));
    }
    this.loaded.push(version.id);
    return Promise.resolve(model);
  }
}

/** An app like `createServer` builds, with the registry's training and loading seams replaced. */
export async function startAppWith(
  config: AppConfig,
  seams: { trainer?: ModelTrainer; loader?: ModelLoader },
): Promise<NestFastifyApplication> {
  const logger = createLogger(config.logLevel);
  let builder = Test.createTestingModule({ imports: [AppModule.forRole(config, logger)] });
  if (seams.trainer) builder = builder.overrideProvider(MODEL_TRAINER).useValue(seams.trainer);
  if (seams.loader) builder = builder.overrideProvider(MODEL_LOADER).useValue(seams.loader);
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
    logger: false,
  });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}

export interface GraphqlResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions: { code: string } & Record<string, unknown> }[];
}

export async function graphql<T = Record<string, unknown>>(
  app: NestFastifyApplication,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<GraphqlResponse<T>> {
  const response = await app.inject({
    method: 'POST',
    url: '/graphql',
    headers: { 'content-type': 'application/json' },
    payload: { query, variables },
  });
  return response.json<GraphqlResponse<T>>();
}

/** Polls until `check` passes; returns the elapsed milliseconds. */
export async function eventually(
  check: () => Promise<void> | void,
  timeoutMs: number,
  intervalMs = 25,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await check();
      return Date.now() - started;
    } catch (error) {
      if (Date.now() - started > timeoutMs) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}
