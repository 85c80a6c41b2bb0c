import type { CliCommand, CliContext } from '../../cli-command';
import { formatTable, parseFlags } from '../../cli-command';
import type { Arm, Experiment } from './experiment';
import { ExperimentsOpsModule } from './experiments.module';
import { ExperimentService } from './experiment.service';
import type { RateEstimate } from './online-report';

const TRIGGERED_BY = 'cli';

async function experiments(context: CliContext): Promise<ExperimentService> {
  return (await context.app(ExperimentsOpsModule)).get(ExperimentService);
}

function write(text: string): void {
  process.stdout.write(`${text}\n`);
}

const percent = (rate: number) => `${(rate * 100).toFixed(2)}%`;
const interval = (rate: RateEstimate) =>
  `${percent(rate.rate)} [${percent(rate.low)}, ${percent(rate.high)}]`;
const describeArm = (arm: Arm) =>
  `${arm.name}=${arm.modelVersion ?? 'active'}${arm.profile === null ? '' : `/${arm.profile}`}@${arm.share}%`;

function positional(args: readonly string[], usage: string, count = 1): string[] {
  const values = parseFlags(args)._;
  if (values.length < count) throw new Error(`usage: ${usage}`);
  return values;
}

/** `name:version:profile:share`, comma-separated; version `active` and profile `-` mean none. */
export function parseArms(text: string): Arm[] {
  return text.split(',').map((entry, i) => {
    const parts = entry.trim().split(':');
    if (parts.length !== 4) {
      throw new Error(`--arms entry ${i + 1} ("${entry}"): expected name:version:profile:share`);
    }
    const [name, version, profile, share] = parts;
    return {
      name,
      modelVersion: version === 'active' || version === '' ? null : version,
      profile: profile === '-' || profile === '' ? null : profile,
      share: Number(share),
    };
  });
}

const list: CliCommand = {
  name: 'experiments',
  usage: 'experiments [--first n]',
  summary: 'experiments and canaries, newest first',
  async run(args, context) {
    const first = Number(parseFlags(args).flags.get('first') ?? 20);
    const rows = (await (await experiments(context)).list(first)).map((e: Experiment) => [
      e.id,
      e.name,
      e.kind,
      e.status,
      e.arms.map(describeArm).join(' '),
      e.startedAt?.toISOString() ?? '-',
      e.outcome ?? '-',
    ]);
    write(formatTable(['id', 'name', 'kind', 'status', 'arms', 'started', 'outcome'], rows));
  },
};

const show: CliCommand = {
  name: 'experiment',
  usage: 'experiment <id>',
  summary: 'an experiment and each arm’s online figures against the control',
  async run(args, context) {
    const [id] = positional(args, this.usage);
    const service = await experiments(context);
    const experiment = await service.get(id);
    const reports = await service.report(experiment);
    write(
      `experiment ${experiment.id} ${experiment.name} (${experiment.kind}, ${experiment.status})` +
        (experiment.outcome === null
          ? ''
          : `: ${experiment.outcome}: ${experiment.outcomeReason ?? ''}`),
    );
    write(
      formatTable(
        [
          'arm',
          'version',
          'profile',
          'share',
          'slates',
          'impressions',
          'clicks',
          'purchases',
          'ctr [95%]',
          'vs control',
          'p',
          'more needed',
          'verdict',
        ],
        reports.map((report) => [
          report.arm.name,
          report.arm.modelVersion ?? 'active',
          report.arm.profile ?? '-',
          `${report.arm.share}%`,
          report.counts.slates,
          report.counts.impressions,
          report.counts.clicks,
          report.counts.purchases,
          interval(report.ctr),
          report.ctrVsControl?.relativeLift == null
            ? '-'
            : `${(report.ctrVsControl.relativeLift * 100).toFixed(1)}%`,
          report.ctrVsControl === null ? '-' : report.ctrVsControl.pValue.toFixed(4),
          report.impressionsNeeded ?? '-',
          report.verdict,
        ]),
      ),
    );
    for (const report of reports.slice(1)) write(report.summary);
  },
};

const create: CliCommand = {
  name: 'create-experiment',
  usage:
    'create-experiment <name> --arms name:version|active:profile|-:share,... [--min-impressions n] [--salt s]',
  summary: 'a draft experiment; the first arm is the control',
  async run(args, context) {
    const { _, flags } = parseFlags(args);
    const name = _.at(0);
    const arms = flags.get('arms');
    if (name === undefined || typeof arms !== 'string') throw new Error(`usage: ${this.usage}`);
    const minImpressions = flags.get('min-impressions');
    const salt = flags.get('salt');
    const created = await (
      await experiments(context)
    ).create(
      {
        name,
        arms: parseArms(arms),
        ...(typeof minImpressions === 'string' ? { minImpressions: Number(minImpressions) } : {}),
        ...(typeof salt === 'string' ? { salt } : {}),
      },
      TRIGGERED_BY,
    );
    write(
      `experiment ${created.id} ${created.name} created (draft): ${created.arms.map(describeArm).join(' ')}`,
    );
  },
};

const start: CliCommand = {
  name: 'start-experiment',
  usage: 'start-experiment <id>',
  summary: 'run a draft; every api replica serves its arms within seconds',
  async run(args, context) {
    const [id] = positional(args, this.usage);
    const started = await (await experiments(context)).start(id, TRIGGERED_BY);
    write(`experiment ${started.id} ${started.name} running`);
  },
};

const stop: CliCommand = {
  name: 'stop-experiment',
  usage: 'stop-experiment <id>',
  summary: 'end a running experiment (or canary) without promoting anything',
  async run(args, context) {
    const [id] = positional(args, this.usage);
    const stopped = await (await experiments(context)).stop(id, TRIGGERED_BY);
    write(`experiment ${stopped.id} ${stopped.name} stopped`);
  },
};

const promote: CliCommand = {
  name: 'promote-arm',
  usage: 'promote-arm <experiment id> <arm>',
  summary: 'end the experiment for the arm: its version active, its profile the default',
  async run(args, context) {
    const [id, arm] = positional(args, this.usage, 2);
    const stopped = await (await experiments(context)).promoteArm(id, arm, TRIGGERED_BY);
    write(`experiment ${stopped.id} ${stopped.name}: ${stopped.outcome ?? ''}`);
  },
};

const activate: CliCommand = {
  name: 'activate-model-version',
  usage: 'activate-model-version <id> [--canary percent] [--min-impressions n]',
  summary:
    'make a version active on every api replica, or with --canary for that share of users until the judge promotes or rolls it back',
  async run(args, context) {
    const { _, flags } = parseFlags(args);
    const id = _.at(0);
    if (id === undefined) throw new Error(`usage: ${this.usage}`);
    const canary = flags.get('canary');
    const minImpressions = flags.get('min-impressions');
    const version = await (
      await experiments(context)
    ).activate(
      id,
      typeof canary === 'string'
        ? {
            percent: Number(canary),
            ...(typeof minImpressions === 'string'
              ? { minImpressions: Number(minImpressions) }
              : {}),
          }
        : undefined,
      TRIGGERED_BY,
    );
    write(
      typeof canary === 'string'
        ? `version ${version.id}: canary at ${canary}% of users (see \`experiments\`)`
        : `version ${version.id} is active`,
    );
  },
};

export const EXPERIMENT_COMMANDS: readonly CliCommand[] = [
  list,
  show,
  create,
  start,
  stop,
  promote,
  activate,
];
