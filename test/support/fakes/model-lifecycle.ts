import type { ModelMetrics, TimeWindow } from '../../../src/modules/registry/registry.types';
import type { LoadedModel, ModelLoader } from '../../../src/modules/serving/served-model';
import type {
  ModelTrainer,
  TrainRequest,
  TrainResult,
} from '../../../src/modules/training/model-trainer';
import { fakeCategoryModel } from './category-model';

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
  /** What `waitingFor` answers: set it to keep queued runs waiting. */
  waiting: string | null = null;

  waitingFor(): Promise<string | null> {
    return Promise.resolve(this.waiting);
  }

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

/**
 * Loads fake artifacts as a small category model of their own version; records what it loaded;
 * refuses `unloadable` ones.
 */
export class FakeLoader implements ModelLoader {
  readonly loaded: string[] = [];

  load(artifact: Buffer, version: { id: string }): Promise<LoadedModel> {
    const model = parse(artifact);
    if (model.unloadable === true) {
      return Promise.reject(new Error(`fake model of version ${version.id} is unloadable`));
    }
    this.loaded.push(version.id);
    return Promise.resolve(
      fakeCategoryModel([{ itemId: 'fake-item', category: 'fake' }], { versionId: version.id }),
    );
  }
}
