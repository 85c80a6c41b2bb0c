/** Injection tokens for the clients created in src/infra; repositories inject these. */
export const PG_POOL = Symbol('PG_POOL');
/** Session-level work and the readiness ping: DATABASE_DIRECT_URL, a few connections. */
export const PG_DIRECT_POOL = Symbol('PG_DIRECT_POOL');
/** Bulk reads from PostgreSQL (stored files, vectors), on a thread of their own (pg-bulk-reader.ts). */
export const PG_BULK_READER = Symbol('PG_BULK_READER');
export const REDIS = Symbol('REDIS');
export const KAFKA = Symbol('KAFKA');
export const LOGGER = Symbol('LOGGER');
