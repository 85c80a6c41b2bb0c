import type { AddressInfo } from 'node:net';
import { Field, ObjectType, Query, Resolver } from '@nestjs/graphql';
import type { INestApplication } from '@nestjs/common';
import type { GcPauses } from '../lib/gc-pauses';

/** IPC messages to the ranking server: rank with the ranking skipped, or for real (echoed back). */
export const SKIP_RANKING = 'skip-ranking';
export const REAL_RANKING = 'real-ranking';
/**
 * IPC message to the ranking server: rank with the least any ranking by the model does (each
 * candidate's row, its model score, the sort), a floor under what a faster ranking path could
 * cost.
 */
export const FLOOR_RANKING = 'floor-ranking';
/** IPC request to the ranking server: its GC pauses since the last such request (answered as GcPausesReply). */
export const GC_PAUSES = 'gc-pauses';

export interface GcPausesReply {
  readonly gcPauses: GcPauses;
}
/**
 * Which variant of `rank` the ranking server runs: the served model with or without a learned
 * combiner (8 knots per input, as a trained version carries), the served-slate log on or off
 * (nothing built, nothing sent), an experiment running (half the users on a second version) or
 * not, the replica's copy of users' interest vectors used or not (every rank reads Redis). Echoed
 * back once in effect.
 */
export interface RankVariant {
  readonly combiner: boolean;
  readonly servedLog: boolean;
  readonly experiment: boolean;
  readonly localCopy: boolean;
}

/** Message a server child sends over IPC once it listens. */
export interface ServerReady {
  readonly port: number;
}

@ObjectType('Health')
class HealthType {
  @Field() status!: string;
}

/** The same constant resolver for both stacks, so only the HTTP + GraphQL layer is measured. */
@Resolver(() => HealthType)
export class ConstantHealthResolver {
  @Query(() => HealthType)
  health(): HealthType {
    return { status: 'ok' };
  }
}

/** Listens on an ephemeral port and reports it to the parent bench process over IPC. */
export async function serveOnEphemeralPort(app: INestApplication): Promise<void> {
  // The bench forks this process; without the parent there is nobody to report to, so stop.
  if (process.send === undefined) throw new Error('start this server from the bench (needs IPC)');
  process.on('disconnect', () => process.exit(0));
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as { address(): AddressInfo }).address();
  const ready: ServerReady = { port };
  process.send(ready);
}
