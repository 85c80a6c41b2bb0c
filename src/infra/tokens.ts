/** Injection tokens for the clients created in src/infra; repositories inject these. */
export const PG_POOL = Symbol('PG_POOL');
/** Session-level work and the readiness ping: DATABASE_DIRECT_URL, a few connections. */
export const PG_DIRECT_POOL = Symbol('PG_DIRECT_POOL');
/** Bulk reads from PostgreSQL (stored files, vectors), on a thread of their own (pg-bulk-reader.ts). */
export const PG_BULK_READER = Symbol('PG_BULK_READER');
/**
 * The process's one LISTEN connection (pg-listener.ts), direct to PostgreSQL: every module's
 * channels share it, so a replica holds one however many modules listen.
 */
export const PG_LISTENER = Symbol('PG_LISTENER');
export const REDIS = Symbol('REDIS');
export const KAFKA = Symbol('KAFKA');
export const LOGGER = Symbol('LOGGER');
