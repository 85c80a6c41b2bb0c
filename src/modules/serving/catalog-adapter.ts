import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { startThread, ThreadCalls } from '../../common/thread';
import type { ModelArtifact, WeightName } from '../training/model/artifact';
import type { TrainBackendPreference } from '../training/model/backend';
import type { InterestScorer } from '../training/model/interest-scorer';
import type { TowerRequest } from './catalog-adapter.thread';
import type { AdapterWeights, TowerPass } from './catalog-tower';
import type { TextVectors } from './served-model';

/** Rows per turn of the event loop while the rows' ID embeddings and biases are looked up. */
const LOOKUP_ROWS = 8192;

/**
 * How long the catalog pass's thread outlives its last pass: started afresh for every pass, with
 * its tfjs backend, it slowed a swap by about a second (`npm run bench -- model-swap`).
 */
export const CATALOG_THREAD_IDLE_MS = 60_000;

/**
 * The catalog pass's thread, shared by the process's loads (one pass at a time), started on
 * first use and ended once idle: its tfjs and WebAssembly memory would stay otherwise, between
 * swaps hours apart. Its matrix products held the request thread for seconds per swap at
 * 300,000 items, in blocks between requests, and their garbage started its collections.
 */
let thread: ThreadCalls<string | null> | undefined;

function calls(): ThreadCalls<string | null> {
  // A pass pending keeps the process alive: its load waits on it.
  thread ??= new ThreadCalls(
    'catalog pass',
    () => startThread(path.join(__dirname, 'catalog-adapter.thread'), null),
    true,
    CATALOG_THREAD_IDLE_MS,
  );
  return thread;
}

/**
 * The catalog pass's tfjs backend (native TensorFlow when installed, else WebAssembly SIMD,
 * about ten times faster than the scalar loop on this workload), started on its thread: at boot,
 * a replica learns there that one loads. The backend's name.
 */
export async function catalogBackend(preference: TrainBackendPreference = 'auto'): Promise<string> {
  return String(
    await calls().call(
      (id) => ({ id, kind: 'backend', backend: preference }) satisfies TowerRequest,
    ),
  );
}

/** Ends the catalog pass's thread; a pass running fails. The next pass starts another. */
export async function stopCatalogThread(): Promise<void> {
  const worker = thread?.release();
  thread = undefined;
  await worker?.terminate();
}

/** Runs `pass` on the catalog pass's thread; `moved`: buffers handed to it, unusable here after. */
export async function threadPass(pass: TowerPass, moved: ArrayBuffer[] = []): Promise<void> {
  await calls().call((id) => ({ id, kind: 'pass', pass }) satisfies TowerRequest, moved);
}

/** A copy of the tensor's values, moved to the thread: a view would send it the whole artifact. */
function weight(artifact: ModelArtifact, name: WeightName): Float32Array<ArrayBuffer> {
  const tensor = artifact.weights[name];
  if (tensor === undefined) throw new Error(`model artifact lacks tensor ${name}`);
  return new Float32Array(tensor.data);
}

/** The residual adapter's weights; none when the architecture has no adapter. */
function adapterWeights(
  artifact: ModelArtifact,
): (AdapterWeights & Record<'w1' | 'b1' | 'w2' | 'b2', Float32Array<ArrayBuffer>>) | undefined {
  const hidden = artifact.manifest.architecture.adapterHidden;
  if (hidden === 0) return undefined;
  return {
    hidden,
    w1: weight(artifact, 'adapter.w1'),
    b1: weight(artifact, 'adapter.b1'),
    w2: weight(artifact, 'adapter.w2'),
    b2: weight(artifact, 'adapter.b2'),
  };
}

/** `matrix` in shared memory, as the thread reads it: itself when it is, else a copy. */
function shared(matrix: Float32Array): Float32Array<SharedArrayBuffer> {
  if (matrix.buffer instanceof SharedArrayBuffer) return matrix as Float32Array<SharedArrayBuffer>;
  const copy = new Float32Array(new SharedArrayBuffer(matrix.byteLength));
  copy.set(matrix);
  return copy;
}

/**
 * The item tower for a whole catalog on the catalog pass's thread: the text vector, plus the
 * residual adapter `relu(X·W1 + b1)·W2 + b2` in batched matrix products, plus the item's ID
 * embedding when it has one. The same function as `InterestScorer.itemVector` (pinned by a unit
 * test), in float32. Item i's vector goes to row i of `out` (shared memory the thread writes in
 * place: serving's rows for a version's load, row-vectors.ts); the items' biases are returned.
 * The request thread only looks up each row's ID embedding and bias, a block at a time between
 * requests. `backend` is the thread's tfjs backend (tests force one).
 */
export async function adaptCatalog(
  artifact: ModelArtifact,
  scorer: InterestScorer,
  text: TextVectors,
  out: Float32Array<SharedArrayBuffer>,
  backend: TrainBackendPreference = 'auto',
): Promise<Float32Array> {
  const { manifest } = artifact;
  const d = manifest.architecture.dimension;
  const n = text.ids.length;
  if (out.length < n * d) {
    throw new Error(`the tower's output holds ${String(out.length / d)} rows, not ${String(n)}`);
  }
  const bias = new Float32Array(n);
  const warm = manifest.architecture.idEmbedding && manifest.warmItems.length > 0;
  const warmRow = new Map(warm ? manifest.warmItems.map((id, row) => [id, row]) : []);
  const idRows = new Int32Array(n);
  for (let start = 0; start < n; start += LOOKUP_ROWS) {
    const end = Math.min(n, start + LOOKUP_ROWS);
    for (let row = start; row < end; row++) {
      const itemId = text.ids[row];
      bias[row] = scorer.itemBias(itemId);
      idRows[row] = warmRow.get(itemId) ?? -1;
    }
    await yieldToEventLoop();
  }
  const adapter = adapterWeights(artifact);
  const idTable = warm ? weight(artifact, 'id.table') : undefined;
  const pass: TowerPass = {
    dimension: d,
    text: shared(text.matrix.subarray(0, n * d)),
    out,
    adapter,
    idTable,
    idRows,
    backend,
  };
  const moved = [adapter?.w1, adapter?.b1, adapter?.w2, adapter?.b2, idTable, idRows];
  await threadPass(
    pass,
    moved.flatMap((array) => (array === undefined ? [] : [array.buffer])),
  );
  return bias;
}
