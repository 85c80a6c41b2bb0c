import { BeforeApplicationShutdown, Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { DomainError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import { ShutdownDeadline, ShutdownStep } from '../../common/shutdown-deadline';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import type { Counter, Gauge } from 'prom-client';
import { LOGGER } from '../../infra/tokens';
import { Metrics } from '../metrics/metrics.registry';
import { RegistryRepository, TrainingLock } from '../registry/registry.repository';
import { RegistryService } from '../registry/registry.service';
import { ARTIFACT_STORE } from '../registry/registry.types';
import { IndexPrebuildService } from '../serving/index-prebuild.service';
import type {
  ArtifactStore,
  ModelVersion,
  TrainingMode,
  TrainingRun,
} from '../registry/registry.types';
import { MODEL_TRAINER } from './model-trainer';
import type { ModelTrainer, TrainResult } from './model-trainer';
import { decidePromotion, GateDecision } from './promotion-gate';

/** Progress is written at most this often; training reports far more often. */
const PROGRESS_WRITE_MS = 1000;
/** How often a caller waiting for a run's end reads its status. */
const RUN_POLL_MS = 250;

export type ScheduledOutcome =
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'ran'; readonly run: TrainingRun };

/**
 * Runs queued training runs, one at a time across every train process: take the cross-process
 * lock, claim the oldest queued run, train (warm-started from the active version for
 * INCREMENTAL), store the artifact, score the active version on the new version's validation
 * window, and let the promotion gate decide. Failures mark the run and version failed and leave
 * the active version alone. Only the train role has this service.
 */
@Injectable()
export class TrainingRunService implements OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger: Logger;
  private readonly stopping = new AbortController();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly runs: Counter<'outcome'>;
  private readonly lastSuccess: Gauge;
  private readonly shutdown = new ShutdownStep(async () => {
    if (this.inFlight.size === 0) return;
    this.stopping.abort(new Error('shutting down'));
    // A run notices the abort between batches and records its failure: half the grace period
    // at most, within the shutdown's deadline.
    await this.deadline.wait(
      Promise.allSettled([...this.inFlight]),
      'the training run in flight',
      this.logger,
      this.config.shutdownTimeoutMs / 2,
    );
  });

  constructor(
    private readonly repository: RegistryRepository,
    private readonly registry: RegistryService,
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
    @Inject(MODEL_TRAINER) private readonly trainer: ModelTrainer,
    private readonly prebuilds: IndexPrebuildService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) logger: Logger,
    metrics: Metrics,
    private readonly deadline: ShutdownDeadline,
  ) {
    this.logger = logger.child({ component: 'training' });
    this.runs = metrics.counter(
      'training_runs_total',
      'Training runs finished here, by outcome (promoted, candidate, failed)',
      ['outcome'],
    );
    this.lastSuccess = metrics.gauge(
      'training_last_success_timestamp_seconds',
      'When the last training run of this process succeeded (unix seconds; 0: none yet)',
    );
  }

  /**
   * Runs queued runs until none is left; returns how many ran here. Returns at once when another
   * trainer holds the lock (it runs them).
   */
  async runQueued(): Promise<number> {
    let ran = 0;
    while (!this.stopping.signal.aborted) {
      const lock = await this.repository.tryTrainingLock();
      if (!lock) return ran;
      let run: TrainingRun | null;
      try {
        const abandoned = await this.repository.failAbandonedRuns();
        if (abandoned > 0) this.logger.warn({ abandoned }, 'marked abandoned training runs failed');
        // A run stays queued while the catalog's text vectors are missing or being backfilled.
        const queued = await this.repository.unfinishedRun();
        const waiting =
          queued?.status === 'queued' ? await this.trainer.waitingFor(queued.createdAt) : null;
        // Logged and recorded when the reason changes, not on every poll.
        if (queued !== null && waiting !== null && waiting !== queued.waitingFor) {
          this.logger.info(
            { runId: queued.id, reason: waiting },
            'training run waits in the queue',
          );
          await this.repository.noteRunWaiting(queued.id, waiting);
        }
        run = waiting === null ? await this.repository.claimQueuedRun() : null;
      } catch (error) {
        await lock.release();
        throw error;
      }
      if (run === null) {
        await lock.release();
        return ran;
      }
      this.logger.info(
        { runId: run.id, mode: run.mode, triggeredBy: run.triggeredBy },
        'training run started',
      );
      // Tracked so shutdown can abort it.
      const done = this.execute(run, lock);
      this.inFlight.add(done);
      try {
        await done;
      } finally {
        this.inFlight.delete(done);
      }
      ran++;
    }
    return ran;
  }

  /**
   * The scheduled path: queues an incremental run once enough events, one of them a click,
   * arrived since the active version, runs it (or waits for the trainer that claimed it) and
   * returns it finished.
   */
  async runIfDue(triggeredBy: string): Promise<ScheduledOutcome> {
    const minimum = this.config.modelLifecycle.trainMinNewEvents;
    const active = await this.repository.activeVersion();
    const { count } = await this.repository.newEvents(active?.eventsSeq ?? null, minimum);
    const since = active ? `version ${active.id}` : 'the beginning';
    if (count < minimum || count === 0) {
      return {
        kind: 'skipped',
        reason: `${String(count)} new events since ${since}; ${String(minimum)} needed`,
      };
    }
    // Training learns from clicks: without one, a run would only record a failed version.
    if (!(await this.repository.clickedAfter(active?.eventsSeq ?? null))) {
      return { kind: 'skipped', reason: `no click among the new events since ${since}` };
    }
    const queued = await this.repository.enqueueRun('INCREMENTAL', triggeredBy);
    if (queued === null) return { kind: 'skipped', reason: 'another training run is in progress' };
    return { kind: 'ran', run: await this.runToEnd(queued) };
  }

  /** Queues a run and returns it finished (CONFLICT while another is queued or running). */
  async run(mode: TrainingMode, triggeredBy: string): Promise<TrainingRun> {
    return this.runToEnd(await this.registry.requestTraining(mode, triggeredBy));
  }

  /** Runs the queue here, or waits for the trainer that claimed `queued`. */
  private async runToEnd(queued: TrainingRun): Promise<TrainingRun> {
    await this.runQueued();
    return this.finished(queued.id);
  }

  /** Waits until the run has finished, wherever it runs; runs the queue while it waits in it. */
  private async finished(runId: string): Promise<TrainingRun> {
    for (;;) {
      const run = await this.registry.getRun(runId);
      if (run.status === 'succeeded' || run.status === 'failed') return run;
      if (this.stopping.signal.aborted) throw new Error('shutting down');
      await new Promise((resolve) => setTimeout(resolve, RUN_POLL_MS));
      if (run.status === 'queued') await this.runQueued();
    }
  }

  onModuleDestroy(): void {
    void this.shutdown.begin();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.shutdown.begin();
  }

  private async execute(run: TrainingRun, lock: TrainingLock): Promise<void> {
    let versionId: string | null = null;
    const progress = this.progressWriter(run.id);
    let epochs = Promise.resolve();
    try {
      const active = await this.repository.activeVersion();
      const parent = run.mode === 'INCREMENTAL' && active?.artifact ? active : null;
      if (run.mode === 'INCREMENTAL' && !parent) {
        // Nothing to warm-start from: the first model learns from every event.
        await this.repository.updateRun(run.id, { mode: 'FULL' });
      }
      const { maxSeq } = await this.repository.newEvents(null, 1);
      versionId = await this.repository.insertTrainingVersion({
        parentId: parent?.id ?? null,
        encoderId: this.trainer.encoderId,
        triggeredBy: `${run.triggeredBy} (run ${run.id})`,
      });
      await this.repository.updateRun(run.id, { versionId });
      const result = await this.trainer.train({
        mode: parent ? 'INCREMENTAL' : 'FULL',
        ...(parent
          ? { parent: { id: parent.id, artifact: await this.artifacts.get(parent.id) } }
          : {}),
        events: { afterSeq: parent?.eventsSeq ?? null, untilSeq: maxSeq },
        signal: this.stopping.signal,
        onProgress: progress.report,
        onEpoch: (epoch) => {
          // In order, and never failing the run: the epochs are for watching it.
          epochs = epochs
            .then(() => this.repository.appendRunEpoch(run.id, epoch))
            .catch((error: unknown) => {
              this.logger.warn({ err: error, runId: run.id }, 'could not record an epoch');
            });
        },
      });
      await epochs;
      await progress.flush();
      const outcome = await this.judge(versionId, result, maxSeq);
      if (outcome.kind === 'failed') {
        await this.repository.finishRun(run.id, 'failed', {
          outcome: 'failed',
          error: outcome.reason,
        });
        this.runs.inc({ outcome: 'failed' });
      } else {
        const finished = outcome.kind === 'promote' ? 'promoted' : 'candidate';
        await this.repository.finishRun(run.id, 'succeeded', { outcome: finished });
        this.runs.inc({ outcome: finished });
        this.lastSuccess.set(Date.now() / 1000);
      }
      this.logger.info(
        { runId: run.id, versionId, outcome: outcome.kind, reason: outcome.reason },
        'training run finished',
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.runs.inc({ outcome: 'failed' });
      // Bad input here is the data's answer (nothing to train on), not a fault of the trainer.
      if (error instanceof DomainError && error.code === 'BAD_USER_INPUT') {
        this.logger.warn({ runId: run.id, versionId, reason: message }, 'training run failed');
      } else {
        this.logger.error({ err: error, runId: run.id, versionId }, 'training run failed');
      }
      await progress.flush().catch(() => undefined);
      if (versionId !== null) {
        await this.repository
          .setVersionStatus(versionId, 'failed', `training failed: ${message}`)
          .catch(() => undefined);
      }
      await this.repository
        .finishRun(run.id, 'failed', { outcome: 'failed', error: message })
        .catch((finishError: unknown) => {
          this.logger.error({ err: finishError, runId: run.id }, 'could not record failed run');
        });
    } finally {
      await lock.release();
    }
  }

  /** Records the trained version and applies the promotion gate. */
  private async judge(
    versionId: string,
    result: TrainResult,
    maxSeq: string,
  ): Promise<GateDecision> {
    const fields = {
      encoderId: result.encoderId,
      backend: result.backend,
      trainWindow: result.trainWindow,
      validation: result.validation,
      trainSamples: result.trainSamples,
      validSamples: result.validSamples,
      eventsSeq: maxSeq,
      hyperparameters: result.hyperparameters,
      metrics: result.metrics,
    };
    const early = decidePromotion({
      candidate: result.metrics,
      active: null,
      tolerance: 0,
      ...(result.diverged === undefined ? {} : { diverged: result.diverged }),
    });
    if (early.kind === 'failed') {
      await this.repository.completeVersion(versionId, 'failed', early.reason, fields);
      return early;
    }
    await this.artifacts.put(versionId, result.artifact);
    await this.repository.completeVersion(versionId, 'candidate', null, fields);
    // Before promotion: replicas that bind the version wait for this build instead of their own.
    await this.prebuilds.request({
      id: versionId,
      encoderId: result.encoderId,
      artifact: result.artifact,
    });
    // Compared with whatever is active now: ops may have switched versions while this trained.
    const active = await this.repository.activeVersion();
    const decision = await this.compare(result, active);
    if (decision.kind === 'promote') {
      await this.registry.promote(versionId, decision.reason, 'promotion gate');
    } else {
      await this.repository.setVersionStatus(versionId, 'candidate', decision.reason);
    }
    return decision;
  }

  private async compare(result: TrainResult, active: ModelVersion | null): Promise<GateDecision> {
    const tolerance = this.config.modelLifecycle.promotionTolerance;
    if (!active) return decidePromotion({ candidate: result.metrics, active: null, tolerance });
    try {
      const artifact = await this.artifacts.get(active.id);
      const metrics = await this.trainer.evaluate(
        artifact,
        result.validation,
        this.stopping.signal,
      );
      return decidePromotion({
        candidate: result.metrics,
        active: { id: active.id, metrics },
        tolerance,
      });
    } catch (error) {
      if (this.stopping.signal.aborted) throw error;
      const message = error instanceof Error ? error.message : String(error);
      return {
        kind: 'candidate',
        reason: `could not evaluate active version ${active.id} on the same window: ${message}`,
      };
    }
  }

  private progressWriter(runId: string): {
    report: (fraction: number) => void;
    flush: () => Promise<void>;
  } {
    let latest: number | undefined;
    let writing: Promise<void> = Promise.resolve();
    let lastWrite = 0;
    const write = () => {
      const value = latest;
      latest = undefined;
      if (value === undefined) return writing;
      lastWrite = Date.now();
      writing = writing
        .then(() => this.repository.updateRun(runId, { progress: value }))
        .catch((error: unknown) => {
          this.logger.warn({ err: error, runId }, 'could not record training progress');
        });
      return writing;
    };
    return {
      report: (fraction) => {
        latest = Math.min(1, Math.max(0, Number.isFinite(fraction) ? fraction : 0));
        if (Date.now() - lastWrite >= PROGRESS_WRITE_MS) void write();
      },
      flush: write,
    };
  }
}
