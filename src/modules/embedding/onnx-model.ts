/**
 * The little of the ONNX protobuf format that reading BERT weights and exposing an intermediate
 * tensor needs: a wire-format reader for ModelProto → GraphProto → {TensorProto initializers,
 * NodeProto nodes, output names}, and a writer that re-emits a model with other graph outputs.
 * Hand-written (about 200 lines) rather than a protobuf library: only five message types and a
 * handful of fields matter, and each is documented in onnx/onnx.proto.
 */

/** Protobuf wire types used by ONNX. */
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

// Field numbers from onnx.proto.
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const GRAPH_OUTPUT = 12;
const NODE_INPUT = 1;
const NODE_OUTPUT = 2;
const NODE_NAME = 3;
const NODE_OP_TYPE = 4;
const TENSOR_DIMS = 1;
const TENSOR_DATA_TYPE = 2;
const TENSOR_FLOAT_DATA = 4;
const TENSOR_NAME = 8;
const TENSOR_RAW_DATA = 9;
const VALUE_INFO_NAME = 1;
const VALUE_INFO_TYPE = 2;
const TYPE_TENSOR = 1;
const TENSOR_TYPE_ELEM_TYPE = 1;

/** TensorProto.DataType.FLOAT */
export const ONNX_FLOAT = 1;

interface Field {
  readonly number: number;
  readonly wireType: number;
  /** Varint value (wire type 0). */
  readonly value: number;
  /** Payload of a length-delimited field. */
  readonly bytes: Uint8Array;
  /** The whole field, tag included, as it sits in the message. */
  readonly raw: Uint8Array;
}

function readVarint(buffer: Uint8Array, offset: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  let position = offset;
  for (;;) {
    if (position >= buffer.length) throw new Error('onnx: truncated varint');
    const byte = buffer[position++];
    // Multiplication rather than shifts: lengths and dims may exceed 2^31.
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, position];
    scale *= 128;
    if (scale > 2 ** 63) throw new Error('onnx: varint too long');
  }
}

/** The top-level fields of one message, in order. */
function* fields(message: Uint8Array): Generator<Field> {
  let offset = 0;
  while (offset < message.length) {
    const start = offset;
    const [tag, afterTag] = readVarint(message, offset);
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    let value = 0;
    let bytes = message.subarray(0, 0);
    switch (wireType) {
      case VARINT:
        [value, offset] = readVarint(message, afterTag);
        break;
      case FIXED64:
        offset = afterTag + 8;
        break;
      case FIXED32:
        offset = afterTag + 4;
        break;
      case LENGTH_DELIMITED: {
        const [length, payloadStart] = readVarint(message, afterTag);
        offset = payloadStart + length;
        bytes = message.subarray(payloadStart, offset);
        break;
      }
      default:
        throw new Error(`onnx: unsupported wire type ${wireType} (field ${number})`);
    }
    if (offset > message.length) throw new Error(`onnx: field ${number} runs past its message`);
    yield { number, wireType, value, bytes, raw: message.subarray(start, offset) };
  }
}

const utf8 = new TextDecoder();

/** Values of a repeated int64 field, packed or not. */
function pushVarints(field: Field, into: number[]): void {
  if (field.wireType === VARINT) {
    into.push(field.value);
    return;
  }
  for (let offset = 0; offset < field.bytes.length;) {
    const [value, next] = readVarint(field.bytes, offset);
    into.push(value);
    offset = next;
  }
}

/** A float32 tensor, row-major (the shape of the model artifact's weight tensors). */
export interface FloatTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface OnnxTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: number;
  /**
   * The values of a FLOAT tensor, decoded on each call (a fresh, aligned copy): most initializers
   * of an encoder (the word embeddings above all) are never needed, so none is decoded up front.
   */
  floatValues(): Float32Array;
}

export interface OnnxNode {
  readonly name: string;
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

export interface OnnxGraph {
  readonly initializers: ReadonlyMap<string, OnnxTensor>;
  readonly nodes: readonly OnnxNode[];
  readonly outputs: readonly string[];
}

function parseTensor(message: Uint8Array): OnnxTensor {
  let name = '';
  let dataType = 0;
  const dims: number[] = [];
  let raw: Uint8Array | undefined;
  const floatFields: Field[] = [];
  for (const field of fields(message)) {
    switch (field.number) {
      case TENSOR_NAME:
        name = utf8.decode(field.bytes);
        break;
      case TENSOR_DATA_TYPE:
        dataType = field.value;
        break;
      case TENSOR_DIMS:
        pushVarints(field, dims);
        break;
      case TENSOR_RAW_DATA:
        raw = field.bytes;
        break;
      case TENSOR_FLOAT_DATA:
        floatFields.push(field);
        break;
      default:
        break;
    }
  }
  const floatValues = (): Float32Array => {
    if (dataType !== ONNX_FLOAT) throw new Error(`onnx: initializer ${name} is not float32`);
    const data = raw !== undefined ? decodeRaw(raw) : decodeFloatData(floatFields);
    const expected = dims.reduce((product, dim) => product * dim, 1);
    if (data.length !== expected) {
      throw new Error(
        `onnx: initializer ${name} has ${data.length} values for dims [${dims.join(', ')}]`,
      );
    }
    return data;
  };
  return { name, dims, dataType, floatValues };
}

/** raw_data is little-endian float32; the copy is aligned (a Buffer's slice() would not copy). */
function decodeRaw(raw: Uint8Array): Float32Array {
  return new Float32Array(new Uint8Array(raw).buffer);
}

/** float_data: packed (one length-delimited field) or one fixed32 field per value. */
function decodeFloatData(floatFields: readonly Field[]): Float32Array {
  const values: number[] = [];
  for (const field of floatFields) {
    if (field.wireType === FIXED32) {
      values.push(
        new DataView(field.raw.buffer, field.raw.byteOffset + field.raw.length - 4, 4).getFloat32(
          0,
          true,
        ),
      );
      continue;
    }
    const view = new DataView(field.bytes.buffer, field.bytes.byteOffset, field.bytes.length);
    for (let i = 0; i + 4 <= field.bytes.length; i += 4) values.push(view.getFloat32(i, true));
  }
  return Float32Array.from(values);
}

function parseNode(message: Uint8Array): OnnxNode {
  let name = '';
  let opType = '';
  const inputs: string[] = [];
  const outputs: string[] = [];
  for (const field of fields(message)) {
    if (field.number === NODE_INPUT) inputs.push(utf8.decode(field.bytes));
    else if (field.number === NODE_OUTPUT) outputs.push(utf8.decode(field.bytes));
    else if (field.number === NODE_NAME) name = utf8.decode(field.bytes);
    else if (field.number === NODE_OP_TYPE) opType = utf8.decode(field.bytes);
  }
  return { name, opType, inputs, outputs };
}

function valueInfoName(message: Uint8Array): string {
  for (const field of fields(message)) {
    if (field.number === VALUE_INFO_NAME) return utf8.decode(field.bytes);
  }
  return '';
}

/**
 * The graph of a serialized ModelProto. Protobuf merges repeated occurrences of an embedded
 * message, so every `graph` field is read.
 */
export function parseOnnxGraph(model: Uint8Array): OnnxGraph {
  const initializers = new Map<string, OnnxTensor>();
  const nodes: OnnxNode[] = [];
  const outputs: string[] = [];
  let graphs = 0;
  for (const modelField of fields(model)) {
    if (modelField.number !== MODEL_GRAPH || modelField.wireType !== LENGTH_DELIMITED) continue;
    graphs++;
    for (const field of fields(modelField.bytes)) {
      if (field.number === GRAPH_INITIALIZER) {
        const tensor = parseTensor(field.bytes);
        initializers.set(tensor.name, tensor);
      } else if (field.number === GRAPH_NODE) {
        nodes.push(parseNode(field.bytes));
      } else if (field.number === GRAPH_OUTPUT) {
        outputs.push(valueInfoName(field.bytes));
      }
    }
  }
  if (graphs === 0) throw new Error('onnx: no graph in the model (is this an ONNX file?)');
  return { initializers, nodes, outputs };
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 128) {
    bytes.push((rest % 128) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

function lengthDelimited(number: number, payload: Uint8Array): Uint8Array {
  const head = [...varint(number * 8 + LENGTH_DELIMITED), ...varint(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** ValueInfoProto { name, type { tensor_type { elem_type: FLOAT } } } (shape left to inference). */
function floatOutput(name: string): Uint8Array {
  const elemType = new Uint8Array([
    ...varint(TENSOR_TYPE_ELEM_TYPE * 8 + VARINT),
    ...varint(ONNX_FLOAT),
  ]);
  const type = lengthDelimited(TYPE_TENSOR, elemType);
  return concat([
    lengthDelimited(VALUE_INFO_NAME, new TextEncoder().encode(name)),
    lengthDelimited(VALUE_INFO_TYPE, type),
  ]);
}

/**
 * Indices of the nodes that `outputs` depend on. Only explicit inputs are followed: enough for
 * graphs without control flow (a subgraph attribute may read outer tensors implicitly).
 */
function neededNodes(nodes: readonly OnnxNode[], outputs: readonly string[]): Set<number> {
  const producer = new Map<string, number>();
  nodes.forEach((node, i) => {
    for (const output of node.outputs) producer.set(output, i);
  });
  const needed = new Set<number>();
  const pending = [...outputs];
  for (let tensor = pending.pop(); tensor !== undefined; tensor = pending.pop()) {
    const index = producer.get(tensor);
    if (index === undefined || needed.has(index)) continue;
    needed.add(index);
    pending.push(...nodes[index].inputs.filter((input) => input !== ''));
  }
  return needed;
}

/**
 * The same model with `outputs` (float tensors of the graph) as its only graph outputs, and only
 * the nodes and initializers they depend on (ONNX Runtime would otherwise still run every node of
 * the original graph). Every other field is copied byte for byte; only the graph's length prefix is recomputed.
 */
export function withGraphOutputs(model: Uint8Array, outputs: readonly string[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let graphs = 0;
  for (const modelField of fields(model)) {
    if (modelField.number !== MODEL_GRAPH || modelField.wireType !== LENGTH_DELIMITED) {
      parts.push(modelField.raw);
      continue;
    }
    if (graphs++ > 0) throw new Error('onnx: more than one graph field; not supported');
    const graphFields = [...fields(modelField.bytes)];
    const nodeFields = graphFields.filter((field) => field.number === GRAPH_NODE);
    const needed = neededNodes(
      nodeFields.map((field) => parseNode(field.bytes)),
      outputs,
    );
    const kept = new Set(nodeFields.filter((_, i) => needed.has(i)));
    const used = new Set([...needed].flatMap((i) => parseNode(nodeFields[i].bytes).inputs));
    const graphParts: Uint8Array[] = [];
    for (const field of graphFields) {
      if (field.number === GRAPH_OUTPUT) continue;
      if (field.number === GRAPH_NODE && !kept.has(field)) continue;
      // Initializers of dropped nodes go too (ONNX Runtime warns about each one left unused).
      if (field.number === GRAPH_INITIALIZER && !used.has(parseTensor(field.bytes).name)) continue;
      graphParts.push(field.raw);
    }
    for (const name of outputs) graphParts.push(lengthDelimited(GRAPH_OUTPUT, floatOutput(name)));
    parts.push(lengthDelimited(MODEL_GRAPH, concat(graphParts)));
  }
  if (graphs === 0) throw new Error('onnx: no graph in the model (is this an ONNX file?)');
  return concat(parts);
}

/**
 * A copy of the model with the values of float initializers replaced, each by as many values as
 * it has, written over its raw_data in place: no length prefix changes, so the copy is the same
 * size and every other byte stays. Initializers stored as float_data are refused (exports of
 * PyTorch models store raw_data).
 */
export function withInitializerValues(
  model: Uint8Array,
  values: ReadonlyMap<string, Float32Array>,
): Uint8Array {
  const out = Uint8Array.from(model);
  const written = new Set<string>();
  for (const modelField of fields(model)) {
    if (modelField.number !== MODEL_GRAPH || modelField.wireType !== LENGTH_DELIMITED) continue;
    for (const field of fields(modelField.bytes)) {
      if (field.number !== GRAPH_INITIALIZER) continue;
      let name = '';
      let raw: Uint8Array | undefined;
      for (const tensorField of fields(field.bytes)) {
        if (tensorField.number === TENSOR_NAME) name = utf8.decode(tensorField.bytes);
        else if (tensorField.number === TENSOR_RAW_DATA) raw = tensorField.bytes;
      }
      const value = values.get(name);
      if (value === undefined) continue;
      if (raw === undefined)
        throw new Error(`onnx: initializer ${name} has no raw_data to replace`);
      if (raw.length !== value.byteLength) {
        throw new Error(
          `onnx: initializer ${name} holds ${raw.length / 4} values, the replacement ${value.length}`,
        );
      }
      out.set(
        new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
        raw.byteOffset - model.byteOffset,
      );
      written.add(name);
    }
  }
  const missing = [...values.keys()].filter((name) => !written.has(name));
  if (missing.length > 0) throw new Error(`onnx: no initializer ${missing.join(', ')}`);
  return out;
}
