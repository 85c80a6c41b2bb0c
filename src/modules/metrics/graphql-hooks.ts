import { DocumentNode, Kind, OperationDefinitionNode } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import { Metrics } from './metrics.registry';

interface TimedContext extends MercuriusContext {
  metricsStart?: number;
  metricsOperation?: string;
}

/** Operation name when the client gave one, else the first root field (`health`, `rank`). */
export function operationLabel(document: DocumentNode): string {
  const operation = document.definitions.find(
    (definition): definition is OperationDefinitionNode =>
      definition.kind === Kind.OPERATION_DEFINITION,
  );
  if (operation === undefined) return 'unknown';
  if (operation.name) return operation.name.value;
  const first = operation.selectionSet.selections.at(0);
  return first?.kind === Kind.FIELD ? first.name.value : 'anonymous';
}

/** Distinct `operation` label values per process; later new names count as `other`. */
export const MAX_OPERATION_LABELS = 100;

/**
 * Operation names are chosen by clients: without a bound, a client sending ever new names would
 * grow the metric (one series per name) without limit.
 */
export function boundedLabels(max: number): (label: string) => string {
  const seen = new Set<string>();
  return (label) => {
    if (seen.has(label)) return label;
    if (seen.size >= max) return 'other';
    seen.add(label);
    return label;
  };
}

/** Mercurius hooks that time each operation from execution start to resolution. */
export function graphqlMetricsHooks(metrics: Metrics) {
  const label = boundedLabels(MAX_OPERATION_LABELS);
  return {
    preExecution: (_schema: unknown, document: DocumentNode, context: TimedContext) => {
      context.metricsStart = performance.now();
      context.metricsOperation = label(operationLabel(document));
      return Promise.resolve();
    },
    onResolution: (execution: { errors?: readonly unknown[] }, context: TimedContext) => {
      if (context.metricsStart !== undefined) {
        metrics.graphqlDuration.observe(
          {
            operation: context.metricsOperation ?? 'unknown',
            outcome: execution.errors?.length ? 'error' : 'ok',
          },
          (performance.now() - context.metricsStart) / 1000,
        );
      }
      return Promise.resolve();
    },
  };
}
