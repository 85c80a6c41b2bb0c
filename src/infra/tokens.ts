/** Injection tokens for the clients created in src/infra; repositories inject these. */
export const PG_POOL = Symbol('PG_POOL');
/** Session-level work and the readiness ping: DATABASE_DIRECT_URL, a few connections. */
export const PG_DIRECT_POOL = Symbol('PG_DIRECT_POOL');
/** Copies of files stored in PostgreSQL as slices, on a thread of their own (pg-file-reader.ts). */
export const PG_FILE_READER = Symbol('PG_FILE_READER');
export const REDIS = Symbol('REDIS');
export const KAFKA = Symbol('KAFKA');
export const LOGGER = Symbol('LOGGER');
