import { Random } from '../../../synthetic/prng';
import { ItemVectors } from '../dataset/dataset';
import { fitServedCombiner } from '../combiner-stage';
import { loadModel, serializeModel } from '../model/artifact';
import { selectBackend } from '../model/backend';
import { InterestScorer } from '../model/interest-scorer';
import { evaluateImpressions, trainInterestModel } from '../trainer';
import type { ModelArchitecture } from '../model/architecture';
import { scoringVectors, TokenInputs, tokenInputs } from './token-inputs';
import { TextBlock, VectorBlock, WorkerJob, WorkerMessage } from './worker-protocol';

/** Child-process entry: runs the one job its parent sends, reports through IPC, then exits. */

function vectorsOf(block: VectorBlock): ItemVectors {
  const index = new Map(block.ids.map((id, row) => [id, row]));
  const d = block.dimension;
  return {
    encoderId: block.encoderId,
    dimension: d,
    get: (itemId) => {
      const row = index.get(itemId);
      return row === undefined ? undefined : block.data.subarray(row * d, (row + 1) * d);
    },
  };
}

/** The text vectors, and the token states when the model reads them (reporting progress). */
async function inputsOf(
  block: VectorBlock,
  architecture: ModelArchitecture,
  texts: TextBlock | undefined,
): Promise<TokenInputs> {
  const vectors = vectorsOf(block);
  if (!architecture.tokenAttention) return { vectors, architecture };
  if (texts === undefined) throw new Error('the model pools token states, and no texts were sent');
  return tokenInputs(vectors, architecture, texts, (done, total) => {
    void post({ type: 'encoding', done, total });
  });
}

/** Set once the job is over: from then on the channel closing is the normal end. */
let finished = false;

/**
 * The parent died (killed, crashed) mid-job: nobody will read the result, so stop computing rather
 * than burn the CPU until the last epoch. A busy worker learns it from a failed send (EPIPE)
 * before it gets to read the channel's end.
 */
function orphaned(): void {
  if (!finished) process.exit(1);
}

/** Resolves once the message is handed to the channel, so disconnecting cannot drop it. */
function post(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined) resolve();
    else
      process.send(message, undefined, undefined, (error: Error | null) => {
        if (error !== null) orphaned();
        resolve();
      });
  });
}

async function run(job: WorkerJob): Promise<void> {
  switch (job.kind) {
    case 'train': {
      const backend = await selectBackend(job.backend);
      void post({ type: 'backend', name: backend.label, skipped: backend.skipped });
      const inputs = await inputsOf(job.vectors, job.architecture, job.texts);
      const { vectors } = inputs;
      const outcome = await trainInterestModel(
        {
          train: job.train,
          validation: job.validation,
          vectors,
          architecture: inputs.architecture,
          ...(inputs.encoderLayers === undefined ? {} : { encoderLayers: inputs.encoderLayers }),
          hyperparameters: job.hyperparameters,
          backend: backend.label,
          ...(job.parent === undefined ? {} : { parent: loadModel(job.parent) }),
          ...(job.clickCounts === undefined ? {} : { clickCounts: new Map(job.clickCounts) }),
          ...(job.notes === undefined ? {} : { notes: job.notes }),
        },
        {
          onProgress: (fraction, loss) => {
            void post({ type: 'progress', fraction, loss });
          },
          onEpoch: (report) => {
            void post({ type: 'epoch', report });
          },
        },
      );
      let artifact = outcome.artifact;
      const stage =
        job.combiner === undefined
          ? undefined
          : await fitServedCombiner(
              outcome.scorer,
              job.validation,
              await scoringVectors(loadModel(outcome.artifact), vectors, job.vectors.ids),
              job.combiner.minSlates,
            );
      if (stage?.spec !== undefined) {
        // Not stored yet: the version's one artifact carries the model and its combiner.
        const { manifest, weights } = loadModel(artifact);
        artifact = serializeModel({ ...manifest, combiner: stage.spec }, weights);
      }
      await post({
        type: 'trained',
        artifact: new Uint8Array(artifact),
        ...(stage === undefined ? {} : { combiner: { metrics: stage.metrics, note: stage.note } }),
        ...(outcome.validation === undefined ? {} : { validation: outcome.validation }),
        epochs: outcome.epochs,
        trainSamples: outcome.trainSamples,
        validSamples: outcome.validSamples,
        samplesPerSecond: outcome.samplesPerSecond,
      });
      return;
    }
    case 'evaluate': {
      const artifact = loadModel(job.artifact);
      const scorer = InterestScorer.fromArtifact(artifact);
      const inputs = await inputsOf(job.vectors, artifact.manifest.architecture, job.texts);
      // Click-only impressions are judged against 9 seeded random catalog items.
      const random = new Random('evaluate');
      const ids = job.vectors.ids;
      const { metrics, count } = evaluateImpressions(
        scorer,
        job.impressions,
        await scoringVectors(artifact, inputs.vectors, ids),
        () => Array.from({ length: 9 }, () => ids[Math.floor(random.next() * ids.length)]),
      );
      await post({ type: 'evaluated', metrics, count });
      return;
    }
  }
}

process.once('disconnect', orphaned);

process.once('message', (job: WorkerJob) => {
  run(job)
    .catch((error: unknown) =>
      post({
        type: 'error',
        message: error instanceof Error ? (error.stack ?? error.message) : String(error),
      }),
    )
    // Closing the channel lets the process exit once the messages are flushed.
    .finally(() => {
      finished = true;
      process.disconnect();
    });
});
