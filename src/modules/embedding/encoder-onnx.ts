import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  BERT_LAYER_PARAMS,
  BertLayerParam,
  BertLayerWeights,
  BertShape,
} from '../../common/bert-layer';
import {
  FloatTensor,
  OnnxGraph,
  OnnxNode,
  parseOnnxGraph,
  withInitializerValues,
} from './onnx-model';

/** The fp32 ONNX export of a sentence encoder, read once: its bytes, graph and shape. */
export interface EncoderOnnx {
  /** The model folder, e.g. `models/all-MiniLM-L6-v2`. */
  readonly folder: string;
  readonly bytes: Uint8Array;
  readonly graph: OnnxGraph;
  readonly shape: BertShape;
}

/**
 * Where each parameter sits in a PyTorch BERT export: the initializer input of the named node
 * under `/encoder/layer.<i>/`. Exports name the linear weights `onnx::MatMul_<n>` (transposed
 * copies, already [in, out]), so nodes, not initializer names, identify them.
 */
const PARAM_NODES: Readonly<Record<BertLayerParam, string>> = {
  'query.kernel': 'attention/self/query/MatMul',
  'query.bias': 'attention/self/query/Add',
  'key.kernel': 'attention/self/key/MatMul',
  'key.bias': 'attention/self/key/Add',
  'value.kernel': 'attention/self/value/MatMul',
  'value.bias': 'attention/self/value/Add',
  'attentionOutput.kernel': 'attention/output/dense/MatMul',
  'attentionOutput.bias': 'attention/output/dense/Add',
  'attentionNorm.gamma': 'attention/output/LayerNorm/Mul',
  'attentionNorm.beta': 'attention/output/LayerNorm/Add_1',
  'intermediate.kernel': 'intermediate/dense/MatMul',
  'intermediate.bias': 'intermediate/dense/Add',
  'output.kernel': 'output/dense/MatMul',
  'output.bias': 'output/dense/Add',
  'outputNorm.gamma': 'output/LayerNorm/Mul',
  'outputNorm.beta': 'output/LayerNorm/Add_1',
};

function numberField(config: Record<string, unknown>, key: string, file: string): number {
  const value = config[key];
  if (typeof value !== 'number') throw new Error(`${file}: ${key} missing or not a number`);
  return value;
}

/** Reads `<folder>/onnx/model.onnx` (fp32: the int8 export has no float weights to train). */
export function readEncoderOnnx(folder: string): EncoderOnnx {
  const configFile = path.join(folder, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  if (config.hidden_act !== 'gelu') {
    throw new Error(
      `${configFile}: hidden_act ${String(config.hidden_act)}; only exact gelu is implemented`,
    );
  }
  const shape: BertShape = {
    layers: numberField(config, 'num_hidden_layers', configFile),
    hidden: numberField(config, 'hidden_size', configFile),
    heads: numberField(config, 'num_attention_heads', configFile),
    intermediate: numberField(config, 'intermediate_size', configFile),
    layerNormEps: numberField(config, 'layer_norm_eps', configFile),
  };
  const bytes = readFileSync(path.join(folder, 'onnx', 'model.onnx'));
  return { folder, bytes, graph: parseOnnxGraph(bytes), shape };
}

function nodeNamed(graph: OnnxGraph, name: string): OnnxNode {
  const node = graph.nodes.find((candidate) => candidate.name === name);
  if (node === undefined) throw new Error(`onnx: no node ${name} (not a PyTorch BERT export?)`);
  return node;
}

/**
 * The graph tensor holding the hidden states after `layer` encoder layers (0: the embeddings'
 * LayerNorm; `layers`: the last hidden state), by the node that computes it.
 */
export function hiddenStateTensor(onnx: EncoderOnnx, layer: number): string {
  if (!Number.isInteger(layer) || layer < 0 || layer > onnx.shape.layers) {
    throw new Error(
      `hidden state after layer ${layer}: the encoder has ${onnx.shape.layers} layers`,
    );
  }
  const node =
    layer === 0
      ? nodeNamed(onnx.graph, '/embeddings/LayerNorm/Add_1')
      : nodeNamed(onnx.graph, `/encoder/layer.${layer - 1}/output/LayerNorm/Add_1`);
  return node.outputs[0];
}

/** The initializer holding each parameter of encoder layer `layer` (0-based). */
function layerInitializers(onnx: EncoderOnnx, layer: number): Record<BertLayerParam, string> {
  const prefix = `/encoder/layer.${layer}/`;
  // The activation must be exact GELU, x·½(1 + erf(x/√2)), which is what the tfjs layer computes.
  nodeNamed(onnx.graph, `${prefix}intermediate/intermediate_act_fn/Erf`);
  const entries = BERT_LAYER_PARAMS.map((param): [BertLayerParam, string] => {
    const node = nodeNamed(onnx.graph, prefix + PARAM_NODES[param]);
    const initializers = node.inputs.filter((input) => onnx.graph.initializers.has(input));
    if (initializers.length !== 1) {
      throw new Error(
        `onnx: ${node.name} has ${initializers.length} initializer inputs, expected 1`,
      );
    }
    return [param, initializers[0]];
  });
  return Object.fromEntries(entries) as Record<BertLayerParam, string>;
}

/** The weights of encoder layer `layer` (0-based), copied out of the initializers. */
export function bertLayerWeights(onnx: EncoderOnnx, layer: number): BertLayerWeights {
  const names = layerInitializers(onnx, layer);
  const weights = Object.fromEntries(
    BERT_LAYER_PARAMS.map((param): [BertLayerParam, FloatTensor] => {
      const tensor = onnx.graph.initializers.get(names[param]);
      if (tensor === undefined) throw new Error(`onnx: initializer ${names[param]} vanished`);
      return [param, { shape: [...tensor.dims], data: tensor.floatValues() }];
    }),
  ) as BertLayerWeights;
  checkShapes(weights, onnx.shape, layer);
  return weights;
}

/**
 * The encoder with its top `layers.length` layers' weights replaced (bottom first, as
 * topLayerWeights gives them): a model version's fine-tuned layers run by ONNX Runtime, so
 * serving encodes through them natively instead of in tfjs. An initializer that another node
 * shares would change that node too: refused.
 */
export function withTopLayerWeights(
  onnx: EncoderOnnx,
  layers: readonly BertLayerWeights[],
): EncoderOnnx {
  if (layers.length === 0) return onnx;
  const first = onnx.shape.layers - layers.length;
  if (first < 0) {
    throw new Error(`top layers: ${layers.length} given, the encoder has ${onnx.shape.layers}`);
  }
  const values = new Map<string, Float32Array>();
  const owner = new Map<string, string>();
  layers.forEach((weights, i) => {
    checkShapes(weights, onnx.shape, first + i);
    const names = layerInitializers(onnx, first + i);
    for (const param of BERT_LAYER_PARAMS) {
      values.set(names[param], weights[param].data);
      owner.set(names[param], `/encoder/layer.${first + i}/`);
    }
  });
  for (const node of onnx.graph.nodes) {
    for (const input of node.inputs) {
      const prefix = owner.get(input);
      if (prefix !== undefined && !node.name.startsWith(prefix)) {
        throw new Error(`onnx: ${node.name} shares ${prefix}'s initializer ${input}`);
      }
    }
  }
  const bytes = withInitializerValues(onnx.bytes, values);
  return { ...onnx, bytes, graph: parseOnnxGraph(bytes) };
}

function checkShapes(weights: BertLayerWeights, shape: BertShape, layer: number): void {
  const { hidden, intermediate } = shape;
  const expected: Readonly<Record<BertLayerParam, readonly number[]>> = {
    'query.kernel': [hidden, hidden],
    'query.bias': [hidden],
    'key.kernel': [hidden, hidden],
    'key.bias': [hidden],
    'value.kernel': [hidden, hidden],
    'value.bias': [hidden],
    'attentionOutput.kernel': [hidden, hidden],
    'attentionOutput.bias': [hidden],
    'attentionNorm.gamma': [hidden],
    'attentionNorm.beta': [hidden],
    'intermediate.kernel': [hidden, intermediate],
    'intermediate.bias': [intermediate],
    'output.kernel': [intermediate, hidden],
    'output.bias': [hidden],
    'outputNorm.gamma': [hidden],
    'outputNorm.beta': [hidden],
  };
  for (const param of BERT_LAYER_PARAMS) {
    const actual = weights[param].shape.join('x');
    if (actual !== expected[param].join('x')) {
      throw new Error(
        `onnx: layer ${layer} ${param} is ${actual}, expected ${expected[param].join('x')}`,
      );
    }
  }
}

/** The weights of the top `k` layers, bottom first: layers `layers − k` … `layers − 1`. */
export function topLayerWeights(onnx: EncoderOnnx, k: number): BertLayerWeights[] {
  if (!Number.isInteger(k) || k < 0 || k > onnx.shape.layers) {
    throw new Error(`top layers: k=${k} outside 0..${onnx.shape.layers}`);
  }
  const first = onnx.shape.layers - k;
  return Array.from({ length: k }, (_, i) => bertLayerWeights(onnx, first + i));
}
