/**
 * Item vectors in WebAssembly memory, and dot products over them in WebAssembly SIMD: four rows
 * at a time (f32x4), so that the four rows' cache misses overlap. On 100 random rows of a
 * 50,000 × 384 matrix, about 3 times the unrolled JavaScript loop, and 7 times on a scan of every
 * row (`npm run bench -- scoring-kernel`). The memory is shared: an index build on another
 * thread reads the matrix in place, and it grows in place (no copy of the rows). The module's
 * bytes are assembled below, so the build needs no WebAssembly toolchain.
 *
 * Layout: a scratch area (the query, a block of row numbers, a block of results), then the
 * row-major matrix. Only the thread that owns the object scores; the scratch is not locked.
 */

const PAGE_BYTES = 65_536;
/** wasm32's limit: 4 GiB, about 2.7 million rows of 384 floats. */
const MAX_PAGES = 65_536;
/** Rows scored per call into the module. */
export const SCORE_BLOCK = 1024;

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

/** Unsigned LEB128. */
function uleb(value: number): number[] {
  const bytes: number[] = [];
  let rest = value >>> 0;
  do {
    const byte = rest & 0x7f;
    rest >>>= 7;
    bytes.push(rest === 0 ? byte : byte | 0x80);
  } while (rest !== 0);
  return bytes;
}

/** Signed LEB128 (i32.const operands). */
function sleb(value: number): number[] {
  const bytes: number[] = [];
  let rest = value | 0;
  for (;;) {
    const byte = rest & 0x7f;
    rest >>= 7;
    const done = (rest === 0 && (byte & 0x40) === 0) || (rest === -1 && (byte & 0x40) !== 0);
    bytes.push(done ? byte : byte | 0x80);
    if (done) return bytes;
  }
}

const vector = (bytes: readonly number[]): number[] => [...uleb(bytes.length), ...bytes];
const section = (id: number, bytes: readonly number[]): number[] => [id, ...vector(bytes)];
const name = (text: string): number[] => vector([...Buffer.from(text, 'utf8')]);

// The instructions the kernel uses (WebAssembly core and SIMD opcodes).
const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  br: (depth: number) => [0x0c, ...uleb(depth)],
  brIf: (depth: number) => [0x0d, ...uleb(depth)],
  end: [0x0b],
  call: (index: number) => [0x10, ...uleb(index)],
  get: (local: number) => [0x20, ...uleb(local)],
  set: (local: number) => [0x21, ...uleb(local)],
  i32Load: (offset = 0) => [0x28, 2, ...uleb(offset)],
  f32Load: [0x2a, 2, 0],
  f32Store: (offset = 0) => [0x38, 2, ...uleb(offset)],
  i32Const: (value: number) => [0x41, ...sleb(value)],
  i32GeU: [0x4f],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  i32Mul: [0x6c],
  i32And: [0x71],
  i32Shl: [0x74],
  f32Add: [0x92],
  f32Mul: [0x94],
  v128Load: (offset: number) => [0xfd, 0x00, 4, ...uleb(offset)],
  v128Zero: [0xfd, 0x0c, ...new Array<number>(16).fill(0)],
  f32x4ExtractLane: (lane: number) => [0xfd, 0x1f, lane],
  f32x4Add: [0xfd, ...uleb(0xe4)],
  f32x4Mul: [0xfd, ...uleb(0xe6)],
};

/** `local += step` */
const increment = (local: number, step: number) => [
  ...op.get(local),
  ...op.i32Const(step),
  ...op.i32Add,
  ...op.set(local),
];

/** `while (local < limit) { body }`, unsigned. */
const whileBelow = (local: number, limit: number, body: readonly number[]) => [
  ...op.block,
  ...op.loop,
  ...op.get(local),
  ...op.get(limit),
  ...op.i32GeU,
  ...op.brIf(1),
  ...body,
  ...op.br(0),
  ...op.end,
  ...op.end,
];

/** The sum of an f32x4 local's lanes, in lane order. */
const lanesSum = (local: number) => [
  ...op.get(local),
  ...op.f32x4ExtractLane(0),
  ...[1, 2, 3].flatMap((lane) => [...op.get(local), ...op.f32x4ExtractLane(lane), ...op.f32Add]),
];

/** A function body: its local declarations (one per entry) and its code. */
const body = (locals: readonly number[], code: readonly number[]) =>
  vector([...uleb(locals.length), ...locals.flatMap((type) => [1, type]), ...code, ...op.end]);

/**
 * dot(a, b, dim) -> f32 over `dim` floats at byte addresses a and b: four f32x4 accumulators
 * over blocks of 16, one over the blocks of 4 left, then the scalar tail.
 */
function dotBody(): number[] {
  const [a, b, dim, j, end, sum] = [0, 1, 2, 3, 4, 9];
  const acc = [5, 6, 7, 8];
  const accumulate = (k: number, offset: number) => [
    ...op.get(acc[k]),
    ...op.get(a),
    ...op.get(j),
    ...op.i32Add,
    ...op.v128Load(offset),
    ...op.get(b),
    ...op.get(j),
    ...op.i32Add,
    ...op.v128Load(offset),
    ...op.f32x4Mul,
    ...op.f32x4Add,
    ...op.set(acc[k]),
  ];
  const byteLimit = (mask: number) => [
    ...op.get(dim),
    ...op.i32Const(mask),
    ...op.i32And,
    ...op.i32Const(2),
    ...op.i32Shl,
    ...op.set(end),
  ];

  return body(
    [I32, I32, V128, V128, V128, V128, F32],
    [
      ...byteLimit(-16),
      ...whileBelow(j, end, [
        ...[0, 1, 2, 3].flatMap((k) => accumulate(k, k * 16)),
        ...increment(j, 64),
      ]),
      ...byteLimit(-4),
      ...whileBelow(j, end, [...accumulate(0, 0), ...increment(j, 16)]),
      ...op.get(acc[0]),
      ...op.get(acc[1]),
      ...op.f32x4Add,
      ...op.get(acc[2]),
      ...op.f32x4Add,
      ...op.get(acc[3]),
      ...op.f32x4Add,
      ...op.set(acc[0]),
      ...lanesSum(acc[0]),
      ...op.set(sum),
      ...byteLimit(-1),
      ...whileBelow(j, end, [
        ...op.get(sum),
        ...op.get(a),
        ...op.get(j),
        ...op.i32Add,
        ...op.f32Load,
        ...op.get(b),
        ...op.get(j),
        ...op.i32Add,
        ...op.f32Load,
        ...op.f32Mul,
        ...op.f32Add,
        ...op.set(sum),
        ...increment(j, 4),
      ]),
      ...op.get(sum),
    ],
  );
}

/**
 * dots(matrix, dim, rows, count, query, out): out[i] = dot(row rows[i], query), i < count.
 * scan(matrix, dim, from, to, query, out): out[r - from] = dot(row r, query), from <= r < to.
 */
function rowsBody(listed: boolean): number[] {
  const [matrix, dim, first, limit, query, out, i, stride] = [0, 1, 2, 3, 4, 5, 6, 7];
  const address = (base: number, index: number[]) => [
    ...op.get(base),
    ...index,
    ...op.i32Const(2),
    ...op.i32Shl,
    ...op.i32Add,
  ];
  // dots: i counts 0..count, the row is rows[i]; scan: i counts from..to and is the row.
  const row = listed ? [...address(first, op.get(i)), ...op.i32Load()] : op.get(i);
  const slot = listed ? op.get(i) : [...op.get(i), ...op.get(first), ...op.i32Sub];
  return body(
    [I32, I32],
    [
      ...op.get(dim),
      ...op.i32Const(2),
      ...op.i32Shl,
      ...op.set(stride),
      ...(listed ? [] : [...op.get(first), ...op.set(i)]),
      ...whileBelow(i, limit, [
        ...address(out, slot),
        ...op.get(matrix),
        ...row,
        ...op.get(stride),
        ...op.i32Mul,
        ...op.i32Add,
        ...op.get(query),
        ...op.get(dim),
        ...op.call(0),
        ...op.f32Store(),
        ...increment(i, 1),
      ]),
    ],
  );
}

/**
 * dots4(matrix, dim, rows, count, query, out): as dots, four rows at a time (count and dim
 * multiples of 4): the four rows' loads are independent, so their cache misses overlap.
 */
function fourRowsBody(): number[] {
  const [matrix, dim, rows, count, query, out, i, end, j, qv] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const row = [10, 11, 12, 13];
  const acc = [14, 15, 16, 17];
  const four = [0, 1, 2, 3];
  const rowsAt = [...op.get(rows), ...op.get(i), ...op.i32Const(2), ...op.i32Shl, ...op.i32Add];
  return body(
    [I32, I32, I32, V128, I32, I32, I32, I32, V128, V128, V128, V128],
    [
      ...op.get(dim),
      ...op.i32Const(2),
      ...op.i32Shl,
      ...op.set(end),
      ...whileBelow(i, count, [
        ...four.flatMap((k) => [
          ...op.get(matrix),
          ...rowsAt,
          ...op.i32Load(4 * k),
          ...op.get(end),
          ...op.i32Mul,
          ...op.i32Add,
          ...op.set(row[k]),
          ...op.v128Zero,
          ...op.set(acc[k]),
        ]),
        ...op.i32Const(0),
        ...op.set(j),
        ...whileBelow(j, end, [
          ...op.get(query),
          ...op.get(j),
          ...op.i32Add,
          ...op.v128Load(0),
          ...op.set(qv),
          ...four.flatMap((k) => [
            ...op.get(acc[k]),
            ...op.get(row[k]),
            ...op.get(j),
            ...op.i32Add,
            ...op.v128Load(0),
            ...op.get(qv),
            ...op.f32x4Mul,
            ...op.f32x4Add,
            ...op.set(acc[k]),
          ]),
          ...increment(j, 16),
        ]),
        ...four.flatMap((k) => [
          ...op.get(out),
          ...op.get(i),
          ...op.i32Const(2),
          ...op.i32Shl,
          ...op.i32Add,
          ...lanesSum(acc[k]),
          ...op.f32Store(4 * k),
        ]),
        ...increment(i, 4),
      ]),
    ],
  );
}

function kernelBinary(): Uint8Array {
  const dotType = [0x60, ...vector([I32, I32, I32]), ...vector([F32])];
  const rowsType = [0x60, ...vector([I32, I32, I32, I32, I32, I32]), ...vector([])];
  const exported = (text: string, index: number) => [...name(text), 0x00, ...uleb(index)];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [2, ...dotType, ...rowsType]),
    // env.memory: shared, 1 page at least, MAX_PAGES at most.
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x03, 1, ...uleb(MAX_PAGES)]),
    ...section(3, [4, 0, 1, 1, 1]),
    ...section(7, [3, ...exported('dots', 1), ...exported('scan', 2), ...exported('dots4', 3)]),
    ...section(10, [4, ...dotBody(), ...rowsBody(true), ...rowsBody(false), ...fourRowsBody()]),
  ]);
}

type RowsKernel = (
  matrix: number,
  dim: number,
  first: number,
  limit: number,
  query: number,
  out: number,
) => void;

const kernel = new WebAssembly.Module(kernelBinary());

const pagesFor = (bytes: number) => Math.ceil(bytes / PAGE_BYTES);
const aligned = (bytes: number) => Math.ceil(bytes / 16) * 16;

/** A growable row-major float32 matrix in WebAssembly memory with SIMD dot products. */
export class VectorMemory {
  private readonly memory: WebAssembly.Memory;
  private readonly dots: RowsKernel;
  private readonly dots4: RowsKernel;
  private readonly scanRows: RowsKernel;
  private readonly queryAt: number;
  private readonly rowsAt: number;
  private readonly outAt: number;
  private readonly matrixAt: number;
  private readonly maxPages: number;
  private capacity = 0;
  private view!: Float32Array<SharedArrayBuffer>;
  private query!: Float32Array<SharedArrayBuffer>;
  private rowList!: Int32Array<SharedArrayBuffer>;
  private out!: Float32Array<SharedArrayBuffer>;

  /** `growable: false` holds exactly `rows` (a small fixed matrix reserves no 4 GiB of addresses). */
  constructor(
    readonly dimension: number,
    rows: number,
    { growable = true }: { growable?: boolean } = {},
  ) {
    this.queryAt = 0;
    this.rowsAt = aligned(dimension * 4);
    this.outAt = this.rowsAt + SCORE_BLOCK * 4;
    this.matrixAt = aligned(this.outAt + SCORE_BLOCK * 4);
    const initial = pagesFor(this.matrixAt + rows * dimension * 4);
    this.maxPages = growable ? MAX_PAGES : initial;
    this.memory = new WebAssembly.Memory({ initial, maximum: this.maxPages, shared: true });
    const instance = new WebAssembly.Instance(kernel, { env: { memory: this.memory } });
    const { dots, dots4, scan } = instance.exports as Record<'dots' | 'dots4' | 'scan', RowsKernel>;
    this.dots = dots;
    this.dots4 = dots4;
    this.scanRows = scan;
    this.grow(rows);
  }

  /** Rows 0 .. rows - 1 (zeros until written). */
  get rows(): number {
    return this.capacity;
  }

  /**
   * Bytes of WebAssembly memory held (scratch and matrix): outside what
   * `process.memoryUsage().arrayBuffers` counts.
   */
  get bytes(): number {
    return this.memory.buffer.byteLength;
  }

  /** `rows × dimension` values, in place (a view: re-read it after `reserve`). */
  get matrix(): Float32Array<SharedArrayBuffer> {
    return this.view;
  }

  /** Makes room for at least `rows` rows, in place; the rows already written stay. */
  reserve(rows: number): void {
    if (rows > this.capacity) this.grow(rows);
  }

  private grow(rows: number): void {
    const bytes = this.matrixAt + rows * this.dimension * 4;
    if (bytes > this.maxPages * PAGE_BYTES) {
      throw new Error(
        this.maxPages === MAX_PAGES
          ? `${rows} rows of ${this.dimension} floats exceed the 4 GiB of WebAssembly memory`
          : `${rows} rows exceed this fixed matrix of ${this.capacity}`,
      );
    }
    const grow = pagesFor(bytes) - this.memory.buffer.byteLength / PAGE_BYTES;
    if (grow > 0) this.memory.grow(grow);
    const buffer = this.memory.buffer as SharedArrayBuffer;
    this.capacity = rows;
    this.view = new Float32Array(buffer, this.matrixAt, this.capacity * this.dimension);
    this.query = new Float32Array(buffer, this.queryAt, this.dimension);
    this.rowList = new Int32Array(buffer, this.rowsAt, SCORE_BLOCK);
    this.out = new Float32Array(buffer, this.outAt, SCORE_BLOCK);
  }

  /**
   * `out[i] = rows[i] · query` for the first `count` rows listed (each below `rows`), summed in
   * float32.
   */
  dotRows(
    rows: Int32Array,
    count: number,
    query: ArrayLike<number>,
    out: Float32Array | Float64Array,
  ): void {
    this.setQuery(query);
    for (let start = 0; start < count; start += SCORE_BLOCK) {
      const block = Math.min(SCORE_BLOCK, count - start);
      for (let i = 0; i < block; i++) {
        const row = rows[start + i];
        if (!(row >= 0 && row < this.capacity)) throw new Error(`row ${row} is out of range`);
        this.rowList[i] = row;
      }
      // Four rows at a time where the rows are whole blocks of four floats; the rest one by one.
      const grouped = this.dimension % 4 === 0 ? block - (block % 4) : 0;
      const { matrixAt, dimension, rowsAt, queryAt, outAt } = this;
      this.dots4(matrixAt, dimension, rowsAt, grouped, queryAt, outAt);
      this.dots(
        matrixAt,
        dimension,
        rowsAt + grouped * 4,
        block - grouped,
        queryAt,
        outAt + grouped * 4,
      );
      for (let i = 0; i < block; i++) out[start + i] = this.out[i];
    }
  }

  /** `out[r - from] = row r · query` for from <= r < to (at most SCORE_BLOCK rows). */
  dotRange(from: number, to: number, query: ArrayLike<number>, out: Float32Array): void {
    if (!(from >= 0 && from <= to && to <= this.capacity && to - from <= SCORE_BLOCK)) {
      throw new Error(`rows ${from}..${to} are out of range`);
    }
    this.setQuery(query);
    this.scanRows(this.matrixAt, this.dimension, from, to, this.queryAt, this.outAt);
    out.set(this.out.subarray(0, to - from));
  }

  private setQuery(query: ArrayLike<number>): void {
    if (query.length !== this.dimension) {
      throw new Error(`query has ${query.length} values, the matrix ${this.dimension} per row`);
    }
    this.query.set(query);
  }
}
