import { Global, Injectable, Module } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { DocumentNode } from 'graphql';

/** Refuses (throws a domain error) a request's document before it is validated or executed. */
export type OperationGate = (document: DocumentNode, request: FastifyRequest) => Promise<void>;

/**
 * Checks that modules add for what Nest's guards never see, since graphql-js answers it itself
 * (introspection): run in Mercurius' preValidation hook, in the order they were added.
 */
@Injectable()
export class OperationGates {
  private readonly gates: OperationGate[] = [];

  add(gate: OperationGate): void {
    this.gates.push(gate);
  }

  async check(document: DocumentNode, request: FastifyRequest): Promise<void> {
    for (const gate of this.gates) await gate(document, request);
  }
}

@Global()
@Module({ providers: [OperationGates], exports: [OperationGates] })
export class OperationGatesModule {}
