import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '../../config/config';
import { APP_CONFIG } from '../../config/config.module';
import type { Logger } from '../../common/logger';
import { DomainError } from '../../common/errors';
import { LOGGER } from '../../infra/tokens';
import { countClicks, Impression, splitByTime, withReplay } from './dataset/dataset';
import { EventRow, impressionsFromEvents, ServedSlateRow } from './dataset/events';
import { encoderFolder } from '../embedding/token-encoders';
import { DEFAULT_ARCHITECTURE, ModelArchitecture } from './model/architecture';
import { loadModel } from './model/artifact';
import { DEFAULT_HYPERPARAMETERS, TrainingHyperparameters } from './trainer';
import { TrainingRepository } from './training.repository';
import type { ModelMetrics, TimeWindow } from '../registry/registry.types';
import type { ModelTrainer, TrainRequest, TrainResult } from './model-trainer';
import { runInWorker } from './worker/run-in-worker';
import { TextBlock, VectorBlock, WorkerMessage } from './worker/worker-protocol';

/** How long before its click a slate may have been served and still earn it. */
const ATTRIBUTION_WINDOW_MS = 86_400_000;
const CLOCK_SLACK_MS = 60_000;
const DAY_MS = 86_400_000;

const window = (impressions: readonly Impression[]): TimeWindow | null =>
  impressions.length === 0
    ? null
    : {
        from: new Date(impressions[0].time),
        to: new Date(impressions[impressions.length - 1].time),
      };

/**
 * Trains the interest model from PostgreSQL events in a child process: full retrain, or warm
 * start from a parent version on its new events plus a replay sample of older ones.
 */
@Injectable()
export class TrainingService implements ModelTrainer {
  readonly encoderId: string;
  private readonly logger: Logger;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    private readonly repository: TrainingRepository,
  ) {
    this.logger = logger.child({ component: 'training' });
    // The encoder's modelId format (TransformersTextEncoder): `<model>:<q8|fp32>`.
    this.encoderId = `${config.embedding.model}:${config.embedding.quantized ? 'q8' : 'fp32'}`;
  }

  get architecture(): ModelArchitecture {
    const t = this.config.training;
    return {
      ...DEFAULT_ARCHITECTURE,
      tokenAttention: t.tokenAttention,
      encoderTopLayers: t.encoderTopLayers,
    };
  }

  get hyperparameters(): TrainingHyperparameters {
    const t = this.config.training;
    return {
      ...DEFAULT_HYPERPARAMETERS,
      epochs: t.epochs,
      batchSize: t.batchSize,
      learningRate: t.learningRate,
      encoderLearningRate: t.encoderLearningRate,
      seed: t.seed,
    };
  }

  async waitingFor(queuedAt: Date): Promise<string | null> {
    if (!(await this.repository.hasVectors(this.encoderId))) {
      return `no item vectors for encoder ${this.encoderId} yet`;
    }
    const waitMs = this.config.modelLifecycle.embeddingWaitMs;
    if (Date.now() - queuedAt.getTime() >= waitMs) return null;
    // Events on items without a vector are left out of training: give a backfill time to finish.
    return (await this.repository.itemsAwaitVectors())
      ? `catalog items still wait for their text vectors (up to TRAIN_EMBEDDING_WAIT_MS=${waitMs} after queueing)`
      : null;
  }

  async train(request: TrainRequest): Promise<TrainResult> {
    const t = this.config.training;
    const incremental = request.mode === 'INCREMENTAL' && request.parent !== undefined;
    const since = this.windowStart();
    const fresh = await this.repository.events(
      incremental ? request.events.afterSeq : null,
      request.events.untilSeq,
      t.maxEvents,
      since,
    );
    const older =
      incremental && request.events.afterSeq !== null
        ? await this.repository.events(null, request.events.afterSeq, t.maxEvents, since)
        : [];
    const [freshImpressions, olderImpressions] = await this.impressions(
      [fresh, older],
      request.events.untilSeq,
      since,
    );
    const impressions = incremental
      ? withReplay(freshImpressions, olderImpressions, t.replayRatio, t.seed)
      : freshImpressions;
    const { train, validation, cutoff } = splitByTime(impressions, t.validationFraction);
    if (train.length === 0) {
      throw new DomainError(
        'BAD_USER_INPUT',
        incremental
          ? `no clicked impressions since version ${request.parent.id}'s events: nothing new to fine-tune on (a FULL run retrains on every event)`
          : 'no clicked impressions to train on',
        { events: fresh.length },
      );
    }
    const vectors = await this.vectorBlock(impressions);
    const architecture = { ...this.architecture, dimension: vectors.dimension };
    const hyperparameters = this.hyperparameters;
    this.logger.info(
      {
        mode: request.mode,
        parent: request.parent?.id,
        events: fresh.length + older.length,
        trainImpressions: train.length,
        validationImpressions: validation.length,
        items: vectors.ids.length,
      },
      'training started',
    );
    let backend = 'unknown';
    const onMessage = (message: WorkerMessage) => {
      switch (message.type) {
        case 'backend':
          backend = message.name;
          this.logger.info({ backend: message.name, skipped: message.skipped }, 'tfjs backend');
          return;
        case 'encoding':
          this.logger.info({ done: message.done, total: message.total }, 'item texts encoded');
          return;
        case 'progress':
          request.onProgress(message.fraction);
          return;
        case 'epoch':
          this.logger.info({ ...message.report }, 'epoch done');
          request.onEpoch?.({
            epoch: message.report.epoch,
            loss: message.report.loss,
            validationAuc: message.report.validation?.auc ?? null,
            seconds: message.report.seconds,
          });
          return;
        case 'trained':
        case 'evaluated':
        case 'error':
          return;
      }
    };
    const result = await runInWorker(
      {
        kind: 'train',
        backend: t.backend,
        train,
        validation,
        vectors,
        ...(architecture.tokenAttention ? { texts: await this.textBlock(vectors.ids) } : {}),
        architecture,
        hyperparameters,
        ...(incremental ? { parent: new Uint8Array(request.parent.artifact) } : {}),
        // Popularity from before the validation window only: counting its clicks would tell the
        // model the answers it is then scored on (the offline eval counts train clicks alone too).
        clickCounts: [
          ...countClicks(
            [...olderImpressions, ...freshImpressions].filter((entry) => entry.time < cutoff),
          ),
        ],
        notes: { mode: request.mode, untilSeq: request.events.untilSeq },
        ...(t.combiner ? { combiner: { minSlates: t.combinerMinSlates } } : {}),
      },
      { signal: request.signal, onMessage },
    );
    if (result.type !== 'trained') throw new Error('training worker returned no model');
    const metrics = {
      ...(result.validation ?? {}),
      trainSamples: result.trainSamples,
      validSamples: result.validSamples,
      samplesPerSecond: result.samplesPerSecond,
      ...result.combiner?.metrics,
    };
    this.logger.info(
      { metrics, backend, combiner: result.combiner?.note ?? 'off (TRAIN_COMBINER=false)' },
      'training finished',
    );
    const validationWindow = window(validation) ?? window(train);
    return {
      artifact: Buffer.from(result.artifact),
      metrics,
      validation: validationWindow ?? { from: new Date(0), to: new Date(0) },
      trainWindow: window(train),
      trainSamples: result.trainSamples,
      validSamples: result.validSamples,
      hyperparameters: {
        ...hyperparameters,
        mode: request.mode,
        replayRatio: t.replayRatio,
        combiner: result.combiner?.note ?? 'off (TRAIN_COMBINER=false)',
      },
      backend,
      encoderId: vectors.encoderId,
    };
  }

  /** Scores an artifact on the impressions of a time window (comparing versions on equal terms). */
  async evaluate(
    artifact: Buffer,
    validation: TimeWindow,
    signal: AbortSignal,
  ): Promise<ModelMetrics> {
    const events = await this.repository.eventsBetween(
      validation.from,
      validation.to,
      this.config.training.maxEvents,
    );
    // The validation window bounds these events; their users' histories reach back as far.
    const [impressions] = await this.impressions([events], null, null);
    if (impressions.length === 0) return {};
    const vectors = await this.vectorBlock(impressions);
    const { tokenAttention } = loadModel(artifact).manifest.architecture;
    const result = await runInWorker(
      {
        kind: 'evaluate',
        artifact: new Uint8Array(artifact),
        impressions,
        vectors,
        ...(tokenAttention ? { texts: await this.textBlock(vectors.ids) } : {}),
      },
      { signal },
    );
    if (result.type !== 'evaluated') throw new Error('evaluation worker returned no metrics');
    return { ...result.metrics, validSamples: result.count };
  }

  /**
   * Each batch's impressions: its events joined to the users' click histories and to the served
   * slates its clicks name (served at most a day before the click: the attribution window).
   */
  private async impressions(
    batches: readonly (readonly EventRow[])[],
    untilSeq: string | null,
    since: Date | null,
  ): Promise<Impression[][]> {
    const all = batches.flat();
    const users = [...new Set(all.map((event) => event.userId))];
    const clicks = await this.repository.clicksOf(users, untilSeq, since);
    return Promise.all(
      batches.map(async (events) => {
        const slates = await this.servedSlatesOf(events);
        return impressionsFromEvents(events, clicks, slates, this.config.training.shownDepth);
      }),
    );
  }

  /** Where a run's events begin (TRAIN_WINDOW_DAYS back from now); null: no bound. */
  private windowStart(): Date | null {
    const days = this.config.training.windowDays;
    return days === 0 ? null : new Date(Date.now() - days * DAY_MS);
  }

  private async servedSlatesOf(events: readonly EventRow[]): Promise<ServedSlateRow[]> {
    const requestIds = new Set<string>();
    let from = Infinity;
    let to = -Infinity;
    for (const event of events) {
      if (event.type !== 'click' || event.requestId === null) continue;
      requestIds.add(event.requestId);
      from = Math.min(from, event.ts);
      to = Math.max(to, event.ts);
    }
    if (requestIds.size === 0) return [];
    return this.repository.servedSlates(
      [...requestIds],
      new Date(from - ATTRIBUTION_WINDOW_MS),
      // Clocks of API replicas and event producers differ a little.
      new Date(to + CLOCK_SLACK_MS),
    );
  }

  /** The current texts of the items a model with token attention reads (encoded in the worker). */
  private async textBlock(itemIds: readonly string[]): Promise<TextBlock> {
    const texts = await this.repository.itemTexts(itemIds);
    return {
      folder: encoderFolder(this.config.embedding),
      threads: this.config.embedding.threads,
      texts: [...texts],
    };
  }

  private async vectorBlock(impressions: readonly Impression[]): Promise<VectorBlock> {
    const ids = new Set<string>();
    for (const impression of impressions) {
      for (const click of impression.history) ids.add(click.itemId);
      for (const id of impression.clicked) ids.add(id);
      for (const id of impression.notClicked) ids.add(id);
    }
    const found = await this.repository.vectors(this.encoderId, [...ids]);
    const dimension = found.values().next().value?.length ?? 0;
    if (dimension === 0) {
      throw new DomainError('UNAVAILABLE', `no item vectors for encoder ${this.encoderId} yet`, {
        items: ids.size,
      });
    }
    const list = [...found];
    const data = new Float32Array(list.length * dimension);
    list.forEach(([, vector], row) => {
      data.set(vector, row * dimension);
    });
    return { encoderId: this.encoderId, dimension, ids: list.map(([id]) => id), data };
  }
}
