/** Deterministic synthetic catalog and behaviour for tests, the demo seed and benchmarks. */
export { Random, cumulative } from './prng';
export { CATEGORIES } from './vocabulary';
export type { CategoryVocabulary } from './vocabulary';
export { generateCatalog } from './catalog';
export type { CatalogOptions, SyntheticCatalog, SyntheticItem } from './catalog';
export { generateBehaviour } from './behaviour';
export type {
  BehaviourOptions,
  SyntheticBehaviour,
  SyntheticEvent,
  SyntheticEventType,
  SyntheticUser,
} from './behaviour';
