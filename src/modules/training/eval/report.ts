import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { COMBINER_INPUTS, CombinerSpec } from '../model/combiner';
import { METRIC_NAMES } from './metrics';
import { EvalResult, TOKEN_ATTENTION, TokenCost } from './run-eval';

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : 'n/a');
const esc = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2'];

/** The comparison table (Markdown); the CLI prints it and the report embeds it. */
export function resultTable(result: EvalResult): string {
  const withRss = result.rows.some((row) => row.peakRssMb !== undefined);
  const withIncremental = result.rows.some((row) => row.incrementalSeconds !== undefined);
  const header = [
    'model',
    ...METRIC_NAMES.map((m) => `${m} (all)`),
    ...METRIC_NAMES.map((m) => `${m} (cold)`),
    'auc (new users)',
    'train s',
    ...(withIncremental ? ['incremental s'] : []),
    ...(withRss ? ['peak RSS MiB'] : []),
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of result.rows) {
    const cells = [
      row.name,
      ...METRIC_NAMES.map((m) => f3(row.all[m])),
      ...METRIC_NAMES.map((m) => f3(row.cold[m])),
      row.coldUsers === undefined ? '' : f3(row.coldUsers.auc),
      row.trainSeconds === undefined ? '' : row.trainSeconds.toFixed(0),
      ...(withIncremental ? [row.incrementalSeconds?.toFixed(0) ?? ''] : []),
      ...(withRss ? [row.peakRssMb?.toFixed(0) ?? ''] : []),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Storage and encode time of token states next to the pooled vector, as report lines. */
export function tokenCostLines(cost: TokenCost): string {
  return [
    `token states: ${cost.meanTokens.toFixed(1)} tokens per item on average (at most ${cost.maxTokens}), ` +
      `${(cost.bytesPerItem / 1024).toFixed(1)} KiB per item in binary16 ` +
      `(pooled vector: ${(cost.pooledBytesPerItem / 1024).toFixed(1)} KiB in float32)`,
    `encoding one new item alone (median of ${cost.timedItems}): pooled vector ` +
      `${cost.pooledMsPerItem.toFixed(1)} ms, token states ${cost.tokensMsPerItem.toFixed(1)} ms`,
    `binary16 states: mean-pooled vector within ${cost.fp16MaxError.toExponential(1)} of float32 (max abs)`,
  ].join('\n');
}

/** Moving average over `window` points, so batch-to-batch noise does not hide the trend. */
function smooth(
  points: readonly (readonly [number, number])[],
  window: number,
): [number, number][] {
  return points.map(([x], i) => {
    const from = Math.max(0, i - window + 1);
    const slice = points.slice(from, i + 1);
    return [x, slice.reduce((sum, [, y]) => sum + y, 0) / slice.length];
  });
}

interface Panel {
  readonly title: string;
  readonly xLabel: string;
  readonly series: readonly (readonly [number, number])[][];
}

function panelSvg(panel: Panel, x0: number, markers: boolean): string[] {
  const y0 = 30;
  const w = 300;
  const h = 200;
  const xs = panel.series.flat().map(([x]) => x);
  const ys = panel.series
    .flat()
    .map(([, y]) => y)
    .filter(Number.isFinite);
  if (ys.length === 0) return [];
  const [xlo, xhi] = [Math.min(...xs), Math.max(...xs)];
  const [lo, hi] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x: number) => x0 + (xhi === xlo ? w / 2 : ((x - xlo) / (xhi - xlo)) * w);
  const sy = (y: number) => y0 + h - ((y - lo) / (hi - lo || 1)) * h;
  const parts = [
    `<text x="${x0 + w / 2}" y="18" text-anchor="middle" font-size="13">${panel.title}</text>`,
    `<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`,
    `<text x="${x0 - 6}" y="${y0 + 4}" text-anchor="end" font-size="10">${hi.toFixed(3)}</text>`,
    `<text x="${x0 - 6}" y="${y0 + h}" text-anchor="end" font-size="10">${lo.toFixed(3)}</text>`,
    `<text x="${x0 + w / 2}" y="${y0 + h + 16}" text-anchor="middle" font-size="10">${panel.xLabel}</text>`,
  ];
  panel.series.forEach((points, i) => {
    const color = COLORS[i % COLORS.length];
    const coords = points
      .filter(([, y]) => Number.isFinite(y))
      .map(([x, y]) => [sx(x).toFixed(1), sy(y).toFixed(1)] as const);
    parts.push(
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${coords.map((c) => c.join(',')).join(' ')}"/>`,
    );
    if (markers) {
      for (const [cx, cy] of coords)
        parts.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${color}"/>`);
    }
  });
  return parts;
}

/**
 * Learning curves, one colour per trained variant: training loss over the run (batch loss,
 * moving average of 10 steps) and validation AUC after each epoch.
 */
export function learningCurvesSvg(result: EvalResult): string {
  const names = Object.keys(result.curves);
  const parts = [
    ...panelSvg(
      {
        title: 'training loss (batch, smoothed)',
        xLabel: 'share of training done',
        series: names.map((name) => smooth(result.lossCurves[name] ?? [], 10)),
      },
      60,
      false,
    ),
    ...panelSvg(
      {
        title: 'validation AUC after each epoch',
        xLabel: 'epoch',
        series: names.map((name) =>
          (result.curves[name] ?? []).map(
            (r) => [r.epoch, r.validation?.auc ?? Number.NaN] as const,
          ),
        ),
      },
      440,
      true,
    ),
  ];
  names.forEach((name, i) => {
    const x = 60 + (i % 3) * 240;
    const y = 272 + Math.floor(i / 3) * 16;
    parts.push(
      `<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${x + 14}" y="${y}" font-size="11">${esc(name)}</text>`,
    );
  });
  const height = 290 + Math.ceil(names.length / 3) * 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="780" height="${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}

/** The learned combiner's shape functions: each input's contribution over its knots. */
export function combinerSvg(spec: CombinerSpec): string {
  const parts = COMBINER_INPUTS.flatMap((input, i) =>
    panelSvg(
      {
        title: `${input}: contribution`,
        xLabel: `${input} input`,
        series: [spec.shapes[input].knots.map((knot, k) => [knot, spec.shapes[input].values[k]])],
      },
      60 + i * 380,
      true,
    ),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${60 + COMBINER_INPUTS.length * 380}" height="260" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}

/**
 * AUC of every row, all dev impressions, the cold-item subset and every impression served as to
 * a new user, as grouped horizontal bars.
 */
export function metricsSvg(result: EvalResult): string {
  const rowHeight = 46;
  const labelWidth = 260;
  const barWidth = 440;
  const height = 40 + result.rows.length * rowHeight + 30;
  const parts: string[] = [
    `<text x="${labelWidth}" y="18" font-size="13">AUC on dev: all impressions (blue), cold items (orange), new users (green); line at 0.5</text>`,
  ];
  const x = (v: number) => labelWidth + Math.max(0, Math.min(1, v)) * barWidth;
  result.rows.forEach((row, i) => {
    const y = 32 + i * rowHeight;
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end" font-size="11">${esc(row.name)}</text>`,
    );
    [
      [row.all.auc, COLORS[0], 0],
      [row.cold.auc, COLORS[1], 13],
      [row.coldUsers?.auc ?? Number.NaN, COLORS[2], 26],
    ].forEach(([value, color, dy]) => {
      const v = Number(value);
      if (!Number.isFinite(v)) return;
      parts.push(
        `<rect x="${labelWidth}" y="${y + Number(dy)}" width="${(x(v) - labelWidth).toFixed(1)}" height="11" fill="${String(color)}"/>`,
        `<text x="${(x(v) + 4).toFixed(1)}" y="${y + Number(dy) + 10}" font-size="10">${v.toFixed(3)}</text>`,
      );
    });
  });
  const axisY = 32 + result.rows.length * rowHeight;
  parts.push(
    `<line x1="${x(0.5)}" y1="26" x2="${x(0.5)}" y2="${axisY}" stroke="#666" stroke-dasharray="3,3"/>`,
    ...[0, 0.25, 0.5, 0.75, 1].map(
      (t) => `<text x="${x(t)}" y="${axisY + 14}" text-anchor="middle" font-size="10">${t}</text>`,
    ),
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + barWidth + 60}" height="${height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}

/** The figures the last line of `npm run eval` carries. */
export function summary(result: EvalResult): Record<string, unknown> {
  const pick = (name: string) => result.rows.find((row) => row.name === name);
  const metrics = (name: string) => {
    const row = pick(name);
    return row === undefined ? null : { ...row.all, cold: row.cold };
  };
  return {
    eval: 'mind',
    data: result.dataDir,
    encoder: result.encoderId,
    backend: result.backend,
    trained: metrics('trained model'),
    ...(result.tokens === undefined
      ? {}
      : { tokenAttention: { ...metrics(TOKEN_ATTENTION.name), cost: result.tokens } }),
    fineTuned: Object.fromEntries(
      result.rows
        .filter((row) => row.name.includes('fine-tuned'))
        .map((row) => [
          row.name,
          {
            ...metrics(row.name),
            trainSeconds: row.trainSeconds,
            incrementalSeconds: row.incrementalSeconds,
          },
        ]),
    ),
    baselines: {
      random: metrics('random'),
      popularity: metrics('popularity'),
      frozenEncoder: metrics('frozen encoder (mean history, cosine)'),
    },
    served: Object.fromEntries(
      result.rows
        .filter((row) => row.name.startsWith('served: ') || row.quoted === true)
        .map((row) => [
          row.name,
          { ...row.all, coldAuc: row.cold.auc, newUsersAuc: row.coldUsers?.auc ?? null },
        ]),
    ),
    ablations: Object.fromEntries(
      result.rows
        .filter((row) => row.name.startsWith('no ') || row.name.startsWith('+ '))
        .map((row) => [row.name, { auc: row.all.auc, coldAuc: row.cold.auc }]),
    ),
    counts: result.counts,
  };
}

/** Writes report.md, learning-curves.svg, metrics.svg and results.json; returns the folder. */
export function writeReport(root: string, result: EvalResult, notes: readonly string[]): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const dir = path.join(root, `eval-${stamp}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'learning-curves.svg'), learningCurvesSvg(result));
  writeFileSync(path.join(dir, 'metrics.svg'), metricsSvg(result));
  if (result.combiner !== undefined) {
    writeFileSync(path.join(dir, 'combiner.svg'), combinerSvg(result.combiner));
  }
  writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify(result, null, 2)}\n`);
  const c = result.counts;
  const markdown = [
    `# Offline evaluation: ${result.dataDir}`,
    '',
    `Encoder \`${result.encoderId}\`, tfjs backend \`${result.backend}\`. ${c.items} items; trained on ` +
      `${c.trainImpressions} impressions (validation ${c.validationImpressions}, the latest by time); ` +
      `scored on ${c.devImpressions} dev impressions (${c.skippedImpressions} without a click or a ` +
      `non-click skipped), of which ${c.coldImpressions} are cold (clicked item absent from train).`,
    '',
    'Metrics as MIND defines them (AUC, MRR, nDCG@5, nDCG@10), averaged over impressions. ' +
      '`served:` rows score what `rank` returns: the model merged with the serving features ' +
      '(popularity and CTR decayed to each impression from train impressions before it, recency ' +
      'from the first time an item was shown) by ranking’s own merge; learned combiners are ' +
      `fitted on the ${c.combinerImpressions} validation impressions the model did not train on. ` +
      '"new users": every dev impression served without history.',
    '',
    resultTable(result),
    '',
    ...(result.tokens === undefined ? [] : [tokenCostLines(result.tokens), '']),
    '![metric comparison](metrics.svg)',
    '',
    ...(result.combiner === undefined ? [] : ['![learned combiner shapes](combiner.svg)', '']),
    '![learning curves](learning-curves.svg)',
    '',
    '## Setup',
    '',
    '```json',
    JSON.stringify(
      { architecture: result.architecture, hyperparameters: result.hyperparameters },
      null,
      2,
    ),
    '```',
    '',
    ...notes.map((note) => `- ${note}`),
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'report.md'), markdown);
  return dir;
}
