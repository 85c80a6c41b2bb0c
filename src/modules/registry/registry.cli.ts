import type { CliCommand, CliContext } from '../../cli-command';
import { formatTable, parseFlags } from '../../cli-command';
import { RegistryModule } from './registry.module';
import { RegistryService } from './registry.service';
import { TRAINING_MODES, TrainingMode, TrainingRun } from './registry.types';

const TRIGGERED_BY = 'cli';
/** How often `train-model --wait` reads the run. */
const WAIT_POLL_MS = 500;

async function registry(context: CliContext): Promise<RegistryService> {
  return (await context.app(RegistryModule)).get(RegistryService);
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function describeRun(run: TrainingRun): string {
  const error = run.error === null ? '' : `: ${run.error}`;
  return `training run ${run.id} ${run.status} (${run.outcome ?? 'no outcome'}), version ${run.versionId ?? '-'}${error}`;
}

const trainModel: CliCommand = {
  name: 'train-model',
  usage: 'train-model [--mode INCREMENTAL|FULL] [--wait]',
  summary:
    'queue a training run for the train role (CONFLICT if one is queued or running); --wait for its end',
  async run(args, context) {
    const { flags } = parseFlags(args);
    const mode = flags.get('mode') ?? 'INCREMENTAL';
    if (typeof mode !== 'string' || !(TRAINING_MODES as readonly string[]).includes(mode)) {
      throw new Error(`--mode must be one of ${TRAINING_MODES.join(', ')}`);
    }
    const service = await registry(context);
    let run = await service.requestTraining(mode as TrainingMode, TRIGGERED_BY);
    process.stdout.write(`${describeRun(run)}\n`);
    if (!flags.has('wait')) return;
    process.stderr.write('waiting for a train-role process (npm start, or `main.js train`)\n');
    while (run.status === 'queued' || run.status === 'running') {
      await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
      run = await service.getRun(run.id);
    }
    process.stdout.write(`${describeRun(run)}\n`);
    if (run.status === 'failed') process.exitCode = 1;
  },
};

const trainingRun: CliCommand = {
  name: 'training-run',
  usage: 'training-run <id>',
  summary: 'a training run: status, progress, outcome',
  async run(args, context) {
    const id = parseFlags(args)._.at(0);
    if (id === undefined) throw new Error(`usage: ${this.usage}`);
    print(await (await registry(context)).getRun(id));
  },
};

const modelVersions: CliCommand = {
  name: 'model-versions',
  usage: 'model-versions [--first n]',
  summary: 'registered model versions, newest first',
  async run(args, context) {
    const first = Number(parseFlags(args).flags.get('first') ?? 20);
    print(await (await registry(context)).listVersions(first));
  },
};

const activeModel: CliCommand = {
  name: 'active-model',
  usage: 'active-model',
  summary: 'the active model version',
  async run(_args, context) {
    print(await (await registry(context)).activeVersion());
  },
};

const activations: CliCommand = {
  name: 'model-activations',
  usage: 'model-activations [--first n]',
  summary: 'the activation log, newest first: activations, rollbacks and canaries',
  async run(args, context) {
    const first = Number(parseFlags(args).flags.get('first') ?? 20);
    const rows = (await (await registry(context)).activations(first)).map((entry) => [
      entry.id,
      entry.createdAt.toISOString(),
      entry.action,
      entry.versionId,
      entry.previousVersionId ?? '-',
      entry.triggeredBy,
      entry.reason ?? '-',
    ]);
    process.stdout.write(
      `${formatTable(['id', 'at', 'action', 'version', 'previous', 'by', 'reason'], rows)}\n`,
    );
  },
};

const rollback: CliCommand = {
  name: 'rollback-model',
  usage: 'rollback-model',
  summary: 'reactivate the version that was active before the current one',
  async run(_args, context) {
    const version = await (await registry(context)).rollback(TRIGGERED_BY);
    process.stdout.write(`rolled back: version ${version.id} is active\n`);
  },
};

export const REGISTRY_COMMANDS: readonly CliCommand[] = [
  modelVersions,
  activeModel,
  trainingRun,
  trainModel,
  activations,
  rollback,
];
