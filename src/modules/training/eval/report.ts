import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { METRIC_NAMES, RankingMetrics } from './metrics';
import { EvalResult } from './run-eval';

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : 'n/a');
const esc = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2'];

/** The comparison table (Markdown); the CLI prints it and the report embeds it. */
export function resultTable(result: EvalResult): string {
  const header = [
    'model',
    ...METRIC_NAMES.map((m) => `${m} (all)`),
    ...METRIC_NAMES.map((m) => `${m} (cold)`),
    'train s',
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const row of result.rows) {
    const cells = [
      row.name,
      ...METRIC_NAMES.map((m) => f3(row.all[m])),
      ...METRIC_NAMES.map((m) => f3(row.cold[m])),
      row.trainSeconds === undefined ? '' : row.trainSeconds.toFixed(0),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Validation AUC and training loss per epoch, one line per trained variant. */
export function learningCurvesSvg(result: EvalResult): string {
  const width = 760;
  const height = 300;
  const panels = [
    { title: 'training loss', value: (r: { loss: number }) => r.loss },
    {
      title: 'validation AUC',
      value: (r: { validation?: RankingMetrics }) => r.validation?.auc ?? Number.NaN,
    },
  ];
  const entries = Object.entries(result.curves);
  const maxEpoch = Math.max(1, ...entries.map(([, reports]) => reports.length));
  const parts: string[] = [];
  panels.forEach((panel, p) => {
    const x0 = 60 + p * 360;
    const y0 = 30;
    const w = 280;
    const h = 200;
    const values = entries
      .flatMap(([, reports]) => reports.map(panel.value))
      .filter(Number.isFinite);
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const span = hi - lo || 1;
    const sx = (epoch: number) =>
      x0 + (maxEpoch === 1 ? w / 2 : ((epoch - 1) / (maxEpoch - 1)) * w);
    const sy = (v: number) => y0 + h - ((v - lo) / span) * h;
    parts.push(
      `<text x="${x0 + w / 2}" y="18" text-anchor="middle" font-size="13">${panel.title}</text>`,
      `<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`,
      `<text x="${x0 - 6}" y="${y0 + 4}" text-anchor="end" font-size="10">${hi.toFixed(3)}</text>`,
      `<text x="${x0 - 6}" y="${y0 + h}" text-anchor="end" font-size="10">${lo.toFixed(3)}</text>`,
      `<text x="${x0 + w / 2}" y="${y0 + h + 16}" text-anchor="middle" font-size="10">epoch (1..${maxEpoch})</text>`,
    );
    entries.forEach(([, reports], i) => {
      const points = reports
        .map((r) => [r.epoch, panel.value(r)] as const)
        .filter(([, v]) => Number.isFinite(v))
        .map(([e, v]) => `${sx(e).toFixed(1)},${sy(v).toFixed(1)}`);
      const color = COLORS[i % COLORS.length];
      parts.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(' ')}"/>`,
        ...points.map((pt) => {
          const [cx, cy] = pt.split(',');
          return `<circle cx="${cx}" cy="${cy}" r="3" fill="${color}"/>`;
        }),
      );
    });
  });
  entries.forEach(([name], i) => {
    const x = 60 + (i % 3) * 240;
    const y = 262 + Math.floor(i / 3) * 16;
    parts.push(
      `<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${COLORS[i % COLORS.length]}"/>`,
      `<text x="${x + 14}" y="${y}" font-size="11">${esc(name)}</text>`,
    );
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 10}" font-family="sans-serif">${parts.join('')}</svg>\n`;
}

/** AUC of every row, all dev impressions and the cold subset, as grouped horizontal bars. */
export function metricsSvg(result: EvalResult): string {
  const rowHeight = 34;
  const labelWidth = 260;
  const barWidth = 440;
  const height = 40 + result.rows.length * rowHeight + 30;
  const parts: string[] = [
    `<text x="${labelWidth}" y="18" font-size="13">AUC on dev: all impressions (blue), cold subset (orange); line at 0.5</text>`,
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
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${labelWidth + barWidth + 60}" height="${height}" font-family="sans-serif">${parts.join('')}</svg>\n`;
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
    baselines: {
      random: metrics('random'),
      popularity: metrics('popularity'),
      frozenEncoder: metrics('frozen encoder (mean history, cosine)'),
    },
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
    'Metrics as MIND defines them (AUC, MRR, nDCG@5, nDCG@10), averaged over impressions.',
    '',
    resultTable(result),
    '',
    '![metric comparison](metrics.svg)',
    '',
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
