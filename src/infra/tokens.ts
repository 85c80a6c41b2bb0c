/** Injection tokens for the clients created in src/infra; repositories inject these. */
export const PG_POOL = Symbol('PG_POOL');
export const REDIS = Symbol('REDIS');
export const KAFKA = Symbol('KAFKA');
export const LOGGER = Symbol('LOGGER');
