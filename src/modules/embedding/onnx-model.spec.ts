import { ONNX_FLOAT, parseOnnxGraph, withGraphOutputs, withInitializerValues } from './onnx-model';

// A protobuf encoder for the test's own messages, independent of the module's writer.
function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 128) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  return [...bytes, rest];
}
const bytesField = (field: number, payload: readonly number[]): number[] => [
  ...varint(field * 8 + 2),
  ...varint(payload.length),
  ...payload,
];
const text = (field: number, value: string) => bytesField(field, [...Buffer.from(value)]);
const int = (field: number, value: number) => [...varint(field * 8), ...varint(value)];
const floatsLE = (values: readonly number[]) => [...Buffer.from(Float32Array.from(values).buffer)];

const node = bytesField(1, [
  ...text(1, 'x'),
  ...text(1, 'w'),
  ...text(2, 'y'),
  ...text(3, '/layer/MatMul'),
  ...text(4, 'MatMul'),
]);
// dims [2, 3], raw_data (little-endian float32)
const rawInitializer = bytesField(5, [
  ...int(1, 2),
  ...int(1, 3),
  ...int(2, ONNX_FLOAT),
  ...text(8, 'w'),
  ...bytesField(9, floatsLE([1, 2, 3, 4, 5, 6])),
]);
// dims packed [2], float_data packed
const packedInitializer = bytesField(5, [
  ...bytesField(1, varint(2)),
  ...int(2, ONNX_FLOAT),
  ...text(8, 'b'),
  ...bytesField(4, floatsLE([0.5, -1.25])),
]);
// a graph field before and after the outputs, which a rewrite must keep
const graph = [
  ...node,
  ...text(2, 'tiny'),
  ...rawInitializer,
  ...packedInitializer,
  ...bytesField(12, text(1, 'y')),
  ...bytesField(13, text(1, 'hidden')),
];
const model = Uint8Array.from([...int(1, 8), ...bytesField(7, graph), ...text(2, 'test')]);

describe('parseOnnxGraph', () => {
  it('reads nodes, outputs and float initializers in raw and packed form', () => {
    const parsed = parseOnnxGraph(model);
    expect(parsed.nodes).toEqual([
      { name: '/layer/MatMul', opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] },
    ]);
    expect(parsed.outputs).toEqual(['y']);
    const w = parsed.initializers.get('w');
    expect(w?.dims).toEqual([2, 3]);
    expect(Array.from(w?.floatValues() ?? [])).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(parsed.initializers.get('b')?.floatValues() ?? [])).toEqual([0.5, -1.25]);
  });

  it('rejects bytes that are not a model', () => {
    expect(() => parseOnnxGraph(Uint8Array.from(int(1, 8)))).toThrow(/no graph/);
    expect(() => parseOnnxGraph(Uint8Array.from([0x3a, 0x05, 0x01]))).toThrow(/runs past/);
  });
});

describe('withGraphOutputs', () => {
  it('replaces the graph outputs and keeps every other field', () => {
    const rewritten = withGraphOutputs(model, ['y', 'x']);
    const parsed = parseOnnxGraph(rewritten);
    expect(parsed.outputs).toEqual(['y', 'x']);
    expect(parsed.nodes).toEqual(parseOnnxGraph(model).nodes);
    expect(Array.from(parsed.initializers.get('w')?.floatValues() ?? [])).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
    // The model fields around the graph are copied byte for byte.
    expect(Array.from(rewritten.subarray(0, 2))).toEqual(int(1, 8));
    expect(Array.from(rewritten.subarray(rewritten.length - 6))).toEqual(text(2, 'test'));
    // Each new output is a ValueInfoProto with a float tensor type.
    const output = bytesField(12, [...text(1, 'x'), ...bytesField(2, bytesField(1, int(1, 1)))]);
    expect(Buffer.from(rewritten).includes(Buffer.from(output))).toBe(true);
  });

  it('drops the nodes and initializers no output depends on', () => {
    const parsed = parseOnnxGraph(withGraphOutputs(model, ['x']));
    expect(parsed.outputs).toEqual(['x']);
    expect(parsed.nodes).toEqual([]);
    expect([...parsed.initializers.keys()]).toEqual([]);
  });
});

describe('withInitializerValues', () => {
  it('writes new values over raw_data and keeps every other byte', () => {
    const patched = withInitializerValues(
      model,
      new Map([['w', Float32Array.from([6, 5, 4, 3, 2, 1])]]),
    );
    expect(patched.length).toBe(model.length);
    const parsed = parseOnnxGraph(patched);
    expect(Array.from(parsed.initializers.get('w')?.floatValues() ?? [])).toEqual([
      6, 5, 4, 3, 2, 1,
    ]);
    expect(parsed.nodes).toEqual(parseOnnxGraph(model).nodes);
    const changed = Array.from(patched).filter((byte, i) => byte !== model[i]).length;
    expect(changed).toBeGreaterThan(0);
    expect(changed).toBeLessThanOrEqual(24);
    // The input is left as it was.
    expect(Array.from(parseOnnxGraph(model).initializers.get('w')?.floatValues() ?? [])).toEqual([
      1, 2, 3, 4, 5, 6,
    ]);
  });

  it('names the initializer it cannot replace', () => {
    expect(() => withInitializerValues(model, new Map([['w', new Float32Array(5)]]))).toThrow(
      /initializer w holds 6 values, the replacement 5/,
    );
    expect(() => withInitializerValues(model, new Map([['b', new Float32Array(2)]]))).toThrow(
      /initializer b has no raw_data/,
    );
    expect(() => withInitializerValues(model, new Map([['nope', new Float32Array(1)]]))).toThrow(
      /no initializer nope/,
    );
  });
});
