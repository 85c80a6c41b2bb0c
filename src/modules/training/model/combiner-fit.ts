import * as tf from '@tensorflow/tfjs';
import { COMBINER_INPUTS, CombinerInput, CombinerSpec, ShapeFunction } from './combiner';

/**
 * One shown slate as the combiner learns from it: per item (served order, or any order where
 * positions are unknown) its inputs in COMBINER_INPUTS order (model NaN: no model score, the
 * prior stood in), its position and whether it was clicked.
 */
export interface CombinerSlate {
  /** items × COMBINER_INPUTS.length, row-major. */
  readonly inputs: Float64Array;
  /** 1-based served position per item; 0 = unknown (no position term). */
  readonly positions: Int32Array;
  readonly clicked: Uint8Array;
}

export interface CombinerFitOptions {
  /** Knots per shape at quantiles of the inputs; 2 = a straight line (logistic-regression-like). */
  readonly knots: number;
  /** Positions beyond this share one position term. */
  readonly maxPosition: number;
  readonly epochs: number;
  readonly learningRate: number;
  /** Penalty on each shape's second differences: smooth curves, not wiggles through the noise. */
  readonly smoothness: number;
  readonly l2: number;
  readonly seed: number;
  readonly onEpoch?: (epoch: number, loss: number) => void;
}

export const DEFAULT_COMBINER_FIT: CombinerFitOptions = {
  knots: 8,
  maxPosition: 20,
  epochs: 60,
  learningRate: 0.05,
  smoothness: 0.01,
  l2: 1e-4,
  seed: 1,
};

const WIDTH = COMBINER_INPUTS.length;
const MODEL = 0;
const BATCH_SLATES = 512;

/** Distinct quantiles of the finite values: the knots of one shape. */
function quantileKnots(values: number[], count: number): number[] {
  if (values.length === 0) return [0];
  values.sort((a, b) => a - b);
  const knots: number[] = [];
  for (let k = 0; k < count; k++) {
    const q = values[Math.round((k / Math.max(1, count - 1)) * (values.length - 1))];
    if (knots.length === 0 || q > knots[knots.length - 1]) knots.push(q);
  }
  return knots;
}

/** Column layout of the design: each shape's knots, the missing-model flag, the positions. */
interface Layout {
  readonly knots: readonly (readonly number[])[];
  readonly offsets: readonly number[];
  readonly missingColumn: number;
  readonly positionColumn: number;
  readonly positions: number;
  readonly columns: number;
}

function layoutOf(slates: readonly CombinerSlate[], options: CombinerFitOptions): Layout {
  const columnsValues: number[][] = COMBINER_INPUTS.map(() => []);
  let maxPosition = 0;
  for (const slate of slates) {
    for (let i = 0; i < slate.clicked.length; i++) {
      for (let f = 0; f < WIDTH; f++) {
        const x = slate.inputs[i * WIDTH + f];
        if (Number.isFinite(x)) columnsValues[f].push(x);
      }
      maxPosition = Math.max(maxPosition, Math.min(slate.positions[i], options.maxPosition));
    }
  }
  const knots = columnsValues.map((values) => quantileKnots(values, options.knots));
  const offsets: number[] = [];
  let column = 0;
  for (const list of knots) {
    offsets.push(column);
    column += list.length;
  }
  const missingColumn = column++;
  const positionColumn = column;
  return {
    knots,
    offsets,
    missingColumn,
    positionColumn,
    positions: maxPosition,
    columns: column + maxPosition,
  };
}

/** Writes the hat-basis weights of `x` over `knots` into `row` from `offset`. */
function writeBasis(row: Float32Array, offset: number, knots: readonly number[], x: number): void {
  const last = knots.length - 1;
  if (x <= knots[0]) {
    row[offset] += 1;
    return;
  }
  if (x >= knots[last]) {
    row[offset + last] += 1;
    return;
  }
  let lo = 0;
  while (knots[lo + 1] <= x) lo++;
  const t = (x - knots[lo]) / (knots[lo + 1] - knots[lo]);
  row[offset + lo] += 1 - t;
  row[offset + lo + 1] += t;
}

interface Design {
  readonly x: Float32Array;
  readonly mask: Float32Array;
  readonly target: Float32Array;
  readonly slates: number;
  readonly length: number;
}

/** Slates padded to one length: design [slates, length, columns], mask and click targets. */
function designOf(
  slates: readonly CombinerSlate[],
  layout: Layout,
  maxPosition: number,
  length: number,
): Design {
  const { columns } = layout;
  const x = new Float32Array(slates.length * length * columns);
  const mask = new Float32Array(slates.length * length);
  const target = new Float32Array(slates.length * length);
  slates.forEach((slate, s) => {
    const clicks = slate.clicked.reduce((sum, c) => sum + c, 0);
    const items = Math.min(slate.clicked.length, length);
    for (let i = 0; i < items; i++) {
      const cell = s * length + i;
      const row = x.subarray(cell * columns, (cell + 1) * columns);
      for (let f = 0; f < WIDTH; f++) {
        const value = slate.inputs[i * WIDTH + f];
        if (f === MODEL && !Number.isFinite(value)) row[layout.missingColumn] = 1;
        else
          writeBasis(row, layout.offsets[f], layout.knots[f], Number.isFinite(value) ? value : 0);
      }
      const position = Math.min(slate.positions[i], maxPosition);
      if (position > 0) row[layout.positionColumn + position - 1] = 1;
      mask[cell] = 1;
      target[cell] = clicks > 0 ? slate.clicked[i] / clicks : 0;
    }
  });
  return { x, mask, target, slates: slates.length, length };
}

/** Rows of second differences inside each shape: the smoothness penalty's operator. */
function secondDifferences(layout: Layout): Float32Array {
  const rows: number[][] = [];
  layout.knots.forEach((knots, f) => {
    for (let k = 1; k + 1 < knots.length; k++) {
      const row = new Array<number>(layout.columns).fill(0);
      const at = layout.offsets[f] + k;
      row[at - 1] = 1;
      row[at] = -2;
      row[at + 1] = 1;
      rows.push(row);
    }
  });
  return Float32Array.from(rows.flat());
}

/** What a fit gives: the spec serving runs and the final training loss. */
export interface CombinerFit {
  readonly spec: CombinerSpec;
  readonly loss: number;
}

/**
 * Fits the additive combiner on clicked slates with tfjs: a listwise softmax over each slate
 * (the clicked items against the others shown with them, so per-user and per-request offsets
 * cancel), each input's shape a piecewise-linear curve, a per-position term that soaks up
 * position bias in training and is left out at serving, smoothness and L2 penalties. Slates
 * without a click carry no listwise signal and are skipped.
 */
export async function fitCombiner(
  all: readonly CombinerSlate[],
  options: CombinerFitOptions = DEFAULT_COMBINER_FIT,
): Promise<CombinerFit> {
  const slates = all.filter((slate) => slate.clicked.some((c) => c > 0));
  if (slates.length === 0) throw new Error('no clicked slates to fit the combiner on');
  const layout = layoutOf(slates, options);
  const length = Math.max(...slates.map((slate) => slate.clicked.length));
  const penalty = secondDifferences(layout);
  const penaltyRows = penalty.length / layout.columns;
  const theta = tf.variable(tf.zeros([layout.columns, 1]));
  const optimizer = tf.train.adam(options.learningRate);
  const smooth = penaltyRows > 0 ? tf.tensor2d(penalty, [penaltyRows, layout.columns]) : null;
  const batches: { x: tf.Tensor3D; mask: tf.Tensor2D; target: tf.Tensor2D; n: number }[] = [];
  for (let start = 0; start < slates.length; start += BATCH_SLATES) {
    const chunk = slates.slice(start, start + BATCH_SLATES);
    const design = designOf(chunk, layout, options.maxPosition, length);
    batches.push({
      x: tf.tensor3d(design.x, [chunk.length, length, layout.columns]),
      mask: tf.tensor2d(design.mask, [chunk.length, length]),
      target: tf.tensor2d(design.target, [chunk.length, length]),
      n: chunk.length,
    });
  }
  let loss = Number.NaN;
  try {
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      let total = 0;
      for (const batch of batches) {
        const value = optimizer.minimize(
          () =>
            tf.tidy(() => {
              const logits = tf
                .matMul(batch.x.reshape([batch.n * length, layout.columns]), theta)
                .reshape([batch.n, length]);
              // Padding never wins the softmax.
              const masked = logits.add(batch.mask.sub(1).mul(1e9));
              const listwise = batch.target.mul(tf.logSoftmax(masked)).sum().neg().div(batch.n);
              const ridge = theta.square().sum().mul(options.l2);
              const curvature =
                smooth === null ? tf.scalar(0) : tf.matMul(smooth, theta).square().sum();
              return listwise
                .add<tf.Scalar>(ridge)
                .add<tf.Scalar>(curvature.mul(options.smoothness));
            }),
          true,
        );
        total += (await value?.data())?.[0] ?? Number.NaN;
        value?.dispose();
      }
      loss = total / batches.length;
      if (!Number.isFinite(loss)) throw new Error(`combiner fit diverged at epoch ${epoch}`);
      options.onEpoch?.(epoch, loss);
    }
    const weights = Array.from(await theta.data());
    return { spec: specOf(weights, layout, slates), loss };
  } finally {
    for (const batch of batches) tf.dispose([batch.x, batch.mask, batch.target]);
    smooth?.dispose();
    theta.dispose();
    optimizer.dispose();
  }
}

/**
 * The fitted weights as shapes, each centred on its mean contribution over the training items,
 * so a part reads as "this much above or below an average item"; the missing-model constant moves
 * with the model's shape, so scores keep their differences.
 */
function specOf(
  weights: readonly number[],
  layout: Layout,
  slates: readonly CombinerSlate[],
): CombinerSpec {
  const raw: ShapeFunction[] = layout.knots.map((knots, f) => ({
    knots: [...knots],
    values: knots.map((_, k) => weights[layout.offsets[f] + k]),
  }));
  const sums = new Float64Array(WIDTH);
  const counts = new Float64Array(WIDTH);
  for (const slate of slates) {
    for (let i = 0; i < slate.clicked.length; i++) {
      for (let f = 0; f < WIDTH; f++) {
        const x = slate.inputs[i * WIDTH + f];
        if (!Number.isFinite(x)) continue;
        const row = new Float32Array(raw[f].knots.length);
        writeBasis(row, 0, raw[f].knots, x);
        sums[f] += row.reduce((sum, w, k) => sum + w * raw[f].values[k], 0);
        counts[f]++;
      }
    }
  }
  const centre = Array.from(sums, (sum, f) => (counts[f] > 0 ? sum / counts[f] : 0));
  // Only slates mixing items with and without a model score say how the two compare; without
  // any, an item without one counts as an average item.
  const mixed = slates.some((slate) => {
    let scored = 0;
    for (let i = 0; i < slate.clicked.length; i++) {
      if (Number.isFinite(slate.inputs[i * WIDTH + MODEL])) scored++;
    }
    return scored > 0 && scored < slate.clicked.length;
  });
  const centred = (f: number): ShapeFunction => ({
    knots: raw[f].knots,
    values: raw[f].values.map((value) => value - centre[f]),
  });
  const shapes: Record<CombinerInput, ShapeFunction> = {
    model: centred(0),
    popularity: centred(1),
    ctr: centred(2),
    recency: centred(3),
    price: centred(4),
  };
  return {
    kind: 'additive',
    shapes,
    missingModel: mixed ? weights[layout.missingColumn] - centre[MODEL] : 0,
    positionBias: weights.slice(layout.positionColumn, layout.positionColumn + layout.positions),
    fit: {
      slates: slates.length,
      items: slates.reduce((sum, slate) => sum + slate.clicked.length, 0),
      knots: Math.max(...layout.knots.map((knots) => knots.length)),
    },
  };
}
