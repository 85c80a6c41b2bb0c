import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { DocumentNode, Kind, OperationTypeNode, SelectionSetNode } from 'graphql';
import { APP_CONFIG } from '../../config/config.module';
import type { AppConfig } from '../../config/config';
import { OperationGates } from '../../graphql/operation-gates';
import { presentedApiKey } from './api-key';
import { ApiKeyAuthService } from './api-key-auth.service';

const INTROSPECTION_FIELDS = new Set(['__schema', '__type']);

/** Whether a root selection (fragments included) asks for the schema. `__typename` does not. */
export function introspects(document: DocumentNode): boolean {
  const fragments = new Map(
    document.definitions.flatMap((definition) =>
      definition.kind === Kind.FRAGMENT_DEFINITION
        ? [[definition.name.value, definition.selectionSet] as const]
        : [],
    ),
  );
  const seen = new Set<string>();
  const visit = (set: SelectionSetNode): boolean =>
    set.selections.some((selection) => {
      switch (selection.kind) {
        case Kind.FIELD:
          return INTROSPECTION_FIELDS.has(selection.name.value);
        case Kind.INLINE_FRAGMENT:
          return visit(selection.selectionSet);
        case Kind.FRAGMENT_SPREAD: {
          const name = selection.name.value;
          const fragment = fragments.get(name);
          if (fragment === undefined || seen.has(name)) return false;
          seen.add(name);
          return visit(fragment);
        }
      }
    });
  return document.definitions.some(
    (definition) => definition.kind === Kind.OPERATION_DEFINITION && visit(definition.selectionSet),
  );
}

/**
 * With API keys, the schema is an ops key's to read: introspection is answered by graphql-js
 * itself, past Nest's guards, so it is checked before validation instead.
 */
@Injectable()
export class IntrospectionGate implements OnModuleInit {
  constructor(
    private readonly gates: OperationGates,
    private readonly auth: ApiKeyAuthService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    if (this.config.auth.mode !== 'api-key') return;
    this.gates.add((document, request) => this.check(document, request));
  }

  private async check(document: DocumentNode, request: FastifyRequest): Promise<void> {
    if (!introspects(document)) return;
    const principal = await this.auth.authenticate(presentedApiKey(request.headers));
    this.auth.authorize(principal, 'ops', OperationTypeNode.QUERY, '__schema');
    this.auth.charge(principal, 1);
  }
}
