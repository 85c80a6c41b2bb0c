import type { configSchema } from './config';

/**
 * The documentation of every environment variable in `configSchema`. Names, types, bounds and
 * defaults come from the schema itself (`render-config-docs.ts`); this file adds what the schema
 * cannot say: a group and a description. The Record type makes a new variable without an entry a
 * type error. After a change, `npm run docs:config` rewrites docs/configuration.md (a unit test
 * fails while that file is stale).
 */

/** Sections of docs/configuration.md, in this order. */
export const CONFIG_GROUPS = [
  'Server',
  'PostgreSQL',
  'Redis',
  'Kafka',
  'Ingest',
  'Online state',
  'Embedding',
  'Training',
  'Serving',
  'Ranking',
  'Served-slate log',
  'Experiments',
  'GraphQL',
  'Auth',
] as const;
export type ConfigGroup = (typeof CONFIG_GROUPS)[number];

export type ConfigVariable = keyof typeof configSchema.shape;

export interface ConfigDoc {
  readonly group: ConfigGroup;
  /** Markdown, one line; what the variable controls and what its values mean. */
  readonly description: string;
}

export const CONFIG_DOCS: Record<ConfigVariable, ConfigDoc> = {
  ROLE: {
    group: 'Server',
    description:
      'Which modules this process runs; `all` runs every role in one process. The first argument of `node dist/main.js` overrides it.',
  },
  HOST: { group: 'Server', description: 'Address the HTTP server binds to.' },
  PORT: {
    group: 'Server',
    description:
      'HTTP port of GraphQL (`POST /graphql`) and, unless `OPS_PORT` is set, of `/health/*` and `/metrics`. `0` picks a free port.',
  },
  OPS_PORT: {
    group: 'Server',
    description:
      'When set, `/health/*` and `/metrics` are served only on this port (404 on `PORT`), never authenticated; keep it off the public ingress. Must differ from `PORT`; `0` picks a free port.',
  },
  LOG_LEVEL: {
    group: 'Server',
    description: 'Lowest level written to the log on stdout; `silent` writes none.',
  },
  LOG_FORMAT: {
    group: 'Server',
    description:
      '`json`: one JSON object per line; `pretty`: one readable, coloured line per record; `auto`: `pretty` when stdout is a terminal (`npm start`), else `json`.',
  },
  HEALTH_TIMEOUT_MS: {
    group: 'Server',
    description:
      "Time each dependency check of `/health/ready` that can make the replica unready may take before it counts as failed; checks only reported (Redis; Kafka and PostgreSQL on api replicas) are waited for at most 250 ms, so a dependency that hangs never holds the probe. Keep the readiness probe's timeout above it (the manifests: 3 s).",
  },
  SHUTDOWN_TIMEOUT_MS: {
    group: 'Server',
    description:
      "Grace period after SIGTERM or SIGINT for closing consumers, servers and clients; past it the process exits with status 1. Each wait on a dependency (the Kafka consumers, the embedding worker's batch, a model refresh, then the Kafka clients, Redis and PostgreSQL) gets at most a fifth of it, so one that answers nothing cannot use it up; the modules' waits run at once, then the clients close at once, and all of them end nine tenths of it after the shutdown began.",
  },
  DATABASE_URL: {
    group: 'PostgreSQL',
    description: 'PostgreSQL connection string (`postgres://` or `postgresql://`).',
  },
  DATABASE_DIRECT_URL: {
    group: 'PostgreSQL',
    description:
      'A direct PostgreSQL connection string for what a transaction-mode pooler such as PgBouncer cannot carry: LISTEN/NOTIFY, the session advisory locks of training and embedding, migrations, the readiness ping (on a pool of its own, so ranking’s fallback reads cannot starve it), and the bulk reads of a stored ANN index and of the catalog’s text vectors at a model load (one connection, on the bulk reader’s thread, while it reads). Unset: `DATABASE_URL`.',
  },
  PG_POOLER: {
    group: 'PostgreSQL',
    description:
      'What `DATABASE_URL` reaches: `none`, PostgreSQL itself; `transaction`, a transaction-mode pooler such as PgBouncer. Then `DATABASE_DIRECT_URL` is required, and the query pool sends no `statement_timeout` at connect (PgBouncer refuses it): the service gives up on a query after `PG_STATEMENT_TIMEOUT_MS` and discards its connection, and warns at start when the server-side timeout seen through the pooler is unset or longer (set it for the role: [operations/scaling.md](operations/scaling.md#postgresql-connections)).',
  },
  PG_POOL_MAX: {
    group: 'PostgreSQL',
    description:
      'Most PostgreSQL connections per process. Every replica of every role holds up to this many, plus dedicated `LISTEN` connections.',
  },
  PG_STATEMENT_TIMEOUT_MS: {
    group: 'PostgreSQL',
    description:
      'Server-side `statement_timeout` of every connection (with `PG_POOLER=transaction`, the query pool enforces it client-side: see `PG_POOLER`); `0` means none. The client gives up on a query itself 2 s after it and drops the connection, for a server that answers nothing (its host gone without a reset, where the server cannot time out and the kernel would wait about 15 minutes).',
  },
  REDIS_URL: {
    group: 'Redis',
    description:
      'Redis connection string (`redis://` or `rediss://` for TLS). With `REDIS_CLUSTER_NODES` only its scheme, user and password are used, for every node.',
  },
  REDIS_CLUSTER_NODES: {
    group: 'Redis',
    description:
      'Comma-separated `host:port` seed nodes of a Redis Cluster; set, the service runs in cluster mode (key layout: [operations/scaling.md](operations/scaling.md#redis-cluster)). Unset: the standalone server at `REDIS_URL`.',
  },
  REDIS_READ_TIMEOUT_MS: {
    group: 'Redis',
    description:
      'How long a read on a request’s path (`rank`, `recommend`: online state, cached user vectors) waits for Redis. Past it the read counts as failed and the request reads PostgreSQL instead (degraded `online_state_from_postgres`), and for the next second every request does for that server (on a Redis Cluster, that master’s users or the items; the other masters still answer theirs), so a stalled Redis (a slow command, a failover, `CLIENT PAUSE`) costs one request the wait, not each. Keep it above the api’s longest event-loop pause: a blocked loop fires the timer before it reads the reply.',
  },
  REDIS_PING_TIMEOUT_MS: {
    group: 'Redis',
    description:
      'Each process PINGs each of its Redis connections (every master of a cluster) at least every second; one whose PING goes unanswered this long is presumed dead and reconnected, and the commands waiting on it fail (their callers fall back as on any Redis error: ingest queues its online-state writes for the catch-up). A server whose host is gone without a reset (a crash, a network partition) leaves the connection open and silent, and the kernel would give up on it only after about 15 minutes. Keep it above the longest command Redis may run (a rebuild’s page of events).',
  },
  REDIS_KEY_PREFIX: {
    group: 'Redis',
    description:
      'Prefix of every Redis key the service writes or reads, so several deployments or test runs can share one Redis. No `{` or `}`: the keys after it carry the cluster hash tags.',
  },
  KAFKA_BROKERS: {
    group: 'Kafka',
    description: 'Comma-separated `host:port` list of bootstrap brokers.',
  },
  KAFKA_CLIENT_ID: { group: 'Kafka', description: 'Client id the Kafka clients send to brokers.' },
  KAFKA_SSL: {
    group: 'Kafka',
    description: 'TLS to the brokers (the system’s trusted CAs unless `KAFKA_SSL_CA_FILE`).',
  },
  KAFKA_SSL_CA_FILE: {
    group: 'Kafka',
    description:
      'A PEM file of the CAs to trust for the brokers’ certificates (a private CA); read at start. Needs `KAFKA_SSL=true`.',
  },
  KAFKA_SASL_MECHANISM: {
    group: 'Kafka',
    description:
      'SASL authentication to the brokers: `plain`, `scram-sha-256` or `scram-sha-512` (with `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD`), or `none`. Use it with `KAFKA_SSL=true`: PLAIN sends the password as is.',
  },
  KAFKA_SASL_USERNAME: {
    group: 'Kafka',
    description: 'SASL user name; required with a SASL mechanism.',
  },
  KAFKA_SASL_PASSWORD: {
    group: 'Kafka',
    description: 'SASL password; required with a SASL mechanism. Keep it in the Secret.',
  },
  KAFKA_TOPIC_PREFIX: {
    group: 'Kafka',
    description:
      'Prefix of every topic name (`<prefix>user.events`, its `.dlq`, …) and of the consumer group ids, so several deployments or test runs can share one cluster.',
  },
  KAFKA_TOPIC_PARTITIONS: {
    group: 'Kafka',
    description:
      'Partitions of `user.events`, `catalog.items` and `rank.served` when `node dist/main.js topics` creates them (their dead-letter topics get 1). The most ingest consumers or api producers that share a topic’s load; an existing topic is never changed.',
  },
  KAFKA_TOPIC_REPLICATION_FACTOR: {
    group: 'Kafka',
    description:
      'Replicas of each topic `node dist/main.js topics` creates; unset, the broker’s `default.replication.factor`.',
  },
  KAFKA_DEAD_LETTER_RETENTION_DAYS: {
    group: 'Kafka',
    description:
      'How long the dead-letter topics that `node dist/main.js topics` creates keep a message (`retention.ms`), so that a rejected message outlives the time it takes someone to read, repair and republish it; the consumed topics keep the broker’s retention. An existing topic is never changed.',
  },
  INGEST_EVENTS_GROUP_ID: {
    group: 'Ingest',
    description: 'Consumer group of `user.events`, prefixed with `KAFKA_TOPIC_PREFIX`.',
  },
  INGEST_ITEMS_GROUP_ID: {
    group: 'Ingest',
    description: 'Consumer group of `catalog.items`, prefixed with `KAFKA_TOPIC_PREFIX`.',
  },
  INGEST_SERVED_GROUP_ID: {
    group: 'Ingest',
    description:
      'Consumer group of `rank.served` (the served-slate log), prefixed with `KAFKA_TOPIC_PREFIX`.',
  },
  INGEST_MAX_CLOCK_SKEW_MS: {
    group: 'Ingest',
    description:
      'How far an event’s `timestamp`, or an item’s `updatedAt` or `createdAt`, may lie ahead of the time the broker received it (or of now, if that is earlier); a message further ahead goes to the dead-letter topic, since one producer with a wrong clock would otherwise skew every decayed count and freeze items.',
  },
  INGEST_MAX_VALUE_BYTES: {
    group: 'Ingest',
    description:
      'Largest message value accepted, in bytes; a larger one is dead-lettered, cut to this size, with its original size in the `dlq-value-bytes` header.',
  },
  INGEST_BATCH_SIZE: {
    group: 'Ingest',
    description:
      'Most messages stored in one PostgreSQL transaction; offsets are committed after each such chunk.',
  },
  INGEST_PARTITIONS_CONCURRENCY: {
    group: 'Ingest',
    description: 'Partitions of `user.events` one consumer processes at the same time.',
  },
  INGEST_FETCH_MAX_BYTES_PER_PARTITION: {
    group: 'Ingest',
    description: 'Most bytes one Kafka fetch returns per partition.',
  },
  INGEST_RETRY_INITIAL_MS: {
    group: 'Ingest',
    description:
      'First backoff while a PostgreSQL or Kafka write fails; it doubles per attempt up to `INGEST_RETRY_MAX_MS`. The chunk is held and its offsets are not committed meanwhile.',
  },
  INGEST_RETRY_MAX_MS: { group: 'Ingest', description: 'Longest backoff between retries.' },
  INGEST_SESSION_TIMEOUT_MS: {
    group: 'Ingest',
    description:
      'Kafka consumer session timeout: a consumer silent for this long loses its partitions to the rest of the group.',
  },
  ONLINE_RECENT_CAP: {
    group: 'Online state',
    description:
      'Interactions (click, add to cart, purchase) kept per user in the `recent:` list; older ones are dropped.',
  },
  ONLINE_POPULARITY_HALF_LIFE_HOURS: {
    group: 'Online state',
    description:
      'Half-life of the decayed item popularity counts (impressions, clicks, carts, purchases).',
  },
  ONLINE_CATCH_UP_INTERVAL_MS: {
    group: 'Online state',
    description:
      'How often ingest applies online-state updates that Redis missed (after an outage or a crash), from `online_state_pending`.',
  },
  RANK_POPULARITY_SYNC_MS: {
    group: 'Online state',
    description:
      "How often an api replica applies the `pop-changes` stream to its in-memory copy of item popularity, and reads the `interest-changes` streams to drop its in-memory interest vectors of users who interacted since. `0`: neither; every `rank` reads popularity and the user's interest vector from Redis.",
  },
  EMBEDDING_MODEL: {
    group: 'Embedding',
    description:
      'Sentence encoder: a folder under `EMBEDDING_MODEL_DIR`, or a Hugging Face hub id such as `Xenova/all-MiniLM-L6-v2` (needs `EMBEDDING_ALLOW_REMOTE=true`). Part of the encoder id: changing it needs re-embedding and retraining ([model lifecycle](model-lifecycle.md#changing-the-sentence-encoder)).',
  },
  EMBEDDING_MODEL_DIR: {
    group: 'Embedding',
    description:
      'Folder of local models (`scripts/fetch-model.sh` fills it); hub downloads are cached here too.',
  },
  EMBEDDING_QUANTIZED: {
    group: 'Embedding',
    description:
      '`true`: the int8 model `onnx/model_quantized.onnx` (about 2.5 times as fast, cosine at least 0.98 to fp32); `false`: fp32. Part of the encoder id: switching needs `embed-items --all` and retraining ([model lifecycle](model-lifecycle.md#changing-the-sentence-encoder)).',
  },
  EMBEDDING_ALLOW_REMOTE: {
    group: 'Embedding',
    description:
      'Allow downloading `EMBEDDING_MODEL` from the Hugging Face hub when no local folder has it.',
  },
  EMBEDDING_THREADS: {
    group: 'Embedding',
    description:
      'ONNX Runtime intra-op threads per encoder. Use 2 only for a process that has two cores to itself ([embedding](embedding.md#threads-and-batch-size)).',
  },
  EMBEDDING_BATCH_SIZE: {
    group: 'Embedding',
    description:
      'Most texts per model run; texts are sorted by length first, so a run carries little padding.',
  },
  EMBEDDING_WORKER_BATCH: {
    group: 'Embedding',
    description:
      'Items the embedding worker reads, encodes and stores per transaction (ingest role).',
  },
  EMBEDDING_POLL_INTERVAL_MS: {
    group: 'Embedding',
    description:
      'Safety-net poll of the embedding worker; a PostgreSQL notification normally wakes it at once.',
  },
  EMBEDDING_ONDEMAND_MAX_BATCH: {
    group: 'Embedding',
    description:
      'On-demand encoding of candidate texts (api role): most distinct texts per model run.',
  },
  EMBEDDING_ONDEMAND_MAX_QUEUE: {
    group: 'Embedding',
    description:
      'Most distinct candidate texts waiting for on-demand encoding on one replica. A `rank` whose texts would not fit is answered `RESOURCE_EXHAUSTED` at once instead of queueing work nobody will wait for; texts of a request that timed out leave the queue.',
  },
  EMBEDDING_ONDEMAND_MAX_WAIT_MS: {
    group: 'Embedding',
    description: 'On-demand encoding: longest time a text waits for others to share its model run.',
  },
  TRAIN_CRON: {
    group: 'Training',
    description:
      'When the `train` role checks for new events and fine-tunes: a 5-field cron expression in UTC (`@hourly` and the like are accepted), or `off` for never on its own.',
  },
  TRAIN_MIN_NEW_EVENTS: {
    group: 'Training',
    description:
      'Events (counted by `events.seq`) since the active version below which a scheduled run or `train --once` is skipped (skipped too when none of them is a click).',
  },
  TRAIN_PROMOTION_TOLERANCE: {
    group: 'Training',
    description:
      'Largest AUC drop versus the active version (both scored on the new version’s validation window) at which a new version is still activated automatically; a larger drop leaves it a `candidate`.',
  },
  TRAIN_BACKEND: {
    group: 'Training',
    description:
      'tfjs backend for training and evaluation: `auto` takes the first that loads of `tensorflow-gpu`, `tensorflow`, `wasm`, `cpu`; any other value forces that backend.',
  },
  TRAIN_EPOCHS: {
    group: 'Training',
    description: 'Most epochs per run; early stopping on validation AUC keeps the best epoch.',
  },
  TRAIN_BATCH_SIZE: {
    group: 'Training',
    description: 'Clicked impressions per optimiser step.',
  },
  TRAIN_LEARNING_RATE: { group: 'Training', description: 'Adam learning rate.' },
  TRAIN_VALIDATION_FRACTION: {
    group: 'Training',
    description:
      'Share of the training window, the latest by time, held out for validation metrics and the promotion gate.',
  },
  TRAIN_REPLAY_RATIO: {
    group: 'Training',
    description: 'Older impressions replayed per new impression in incremental fine-tuning.',
  },
  TRAIN_MAX_EVENTS: {
    group: 'Training',
    description: 'Most impression and click events one run reads (the newest).',
  },
  TRAIN_WINDOW_DAYS: {
    group: 'Training',
    description:
      "Days back from now a run reads events from, the click histories included (only those days' partitions are read). 0: every stored event; at most EVENTS_RETENTION_DAYS when that is set.",
  },
  TRAIN_SEED: {
    group: 'Training',
    description: 'Seed of weight initialisation, shuffling and negative sampling.',
  },
  TRAIN_SHOWN_DEPTH: {
    group: 'Training',
    description:
      'Where producers send no `impression` events, the first this many items of a served slate (and any clicked item below them) count as shown to the user; explicit impression events win where they exist.',
  },
  TRAIN_COMBINER: {
    group: 'Training',
    description:
      'Fit the learned combiner (docs/learned-combiner.md) with each model version, on the logged slates of the held-out window; `false` ships versions without one, so every profile ranks by its hand weights.',
  },
  TRAIN_COMBINER_MIN_SLATES: {
    group: 'Training',
    description:
      'Clicked, logged slates the held-out window must hold before a combiner is fitted (half fit it, half judge it against the model alone).',
  },
  TRAIN_TOKEN_ATTENTION: {
    group: 'Training',
    description:
      "Train the item tower over the encoder's token states with a learned attention pooling (NRMS) instead of adapting its mean-pooled vector. Serving encodes each version's catalog texts at activation (about 100 texts/s per ONNX thread with the fp32 encoder, so ~8 minutes per 50,000 items; `npm run bench -- token-serving`). Off: on MovieLens its gain sits near the target, not clear of it (docs/model-lifecycle.md#measured).",
  },
  TRAIN_ENCODER_TOP_LAYERS: {
    group: 'Training',
    description:
      "The encoder's top layers (0-2) each version fine-tunes on clicks and carries in its artifact; serving runs them in ONNX Runtime with the version's weights written in. Needs TRAIN_TOKEN_ATTENTION=true.",
  },
  TRAIN_ENCODER_LEARNING_RATE: {
    group: 'Training',
    description:
      'Adam learning rate of the fine-tuned encoder layers (2e-5 beat 1e-4 on MovieLens by 0.018 AUC).',
  },
  TRAIN_QUEUE_POLL_MS: {
    group: 'Training',
    description:
      'How often a `train` process looks for queued runs, in case it missed the notification that announced one (a notification starts a queued run at once).',
  },
  TRAIN_EMBEDDING_WAIT_MS: {
    group: 'Training',
    description:
      'How long a queued run waits, after it was queued, while catalog items still wait for their text vectors (the embedding worker behind a backfill), so that it trains on the whole catalog; then it trains on the items embedded so far. A run never starts before the catalog has any vector of the encoder. `0`: do not wait for the backlog.',
  },
  MODEL_POLL_INTERVAL_MS: {
    group: 'Serving',
    description:
      'How often an api replica re-reads the active model version, in case it missed an activation notification.',
  },
  RANK_CATALOG_REFRESH_MS: {
    group: 'Serving',
    description:
      'How often an api replica reads what changed in the catalog: item features (category, price, creation time), deletions, and text vectors stored since (items embedded after a model swap are model-scored within about this long).',
  },
  RANK_CATALOG_PAGE_ROWS: {
    group: 'Serving',
    description:
      'Rows per query when an api replica reads the whole catalog: its item features at start, its text vectors at a model load. Each page is one statement, so a catalog of any size loads within PG_STATEMENT_TIMEOUT_MS (at 1,000,000 items one statement took 32 s; a page of 10,000 384-d vectors takes about 0.1 s).',
  },
  RANK_MAX_CANDIDATES: {
    group: 'Ranking',
    description:
      'Most candidates per `rank` call; more is a `BAD_USER_INPUT` on `candidates`. `GRAPHQL_MAX_LIST_LENGTH` must be at least this.',
  },
  RANK_TIMEOUT_MS: {
    group: 'Ranking',
    description:
      'Time limit of one `rank` or `recommend`; past it the answer is a `TIMEOUT` error.',
  },
  RANK_HISTORY_LENGTH: {
    group: 'Ranking',
    description: 'Most recent interactions pooled into a user’s interest vector.',
  },
  RANK_USER_VECTOR_TTL_SECONDS: {
    group: 'Ranking',
    description:
      'Lifetime of a cached user interest vector in Redis; a new interaction of the user invalidates it at once.',
  },
  RANK_USER_VECTOR_LOCAL_CAPACITY: {
    group: 'Ranking',
    description:
      "Users whose interest vectors an api replica also keeps in memory (about 1.7 KB each with a 384-d model; beyond it, one not read lately goes: an approximate least recently used), so `rank` needs no Redis round trip for them. A new interaction drops a user's within `RANK_POPULARITY_SYNC_MS` (the `interest-changes` streams). `0`, or `RANK_POPULARITY_SYNC_MS=0`: none; every `rank` reads Redis.",
  },
  RANK_STALE_USER_WAIT_MS: {
    group: 'Ranking',
    description:
      "How long `rank` waits for the interest vector of a user who just interacted (read from Redis and rebuilt) when the replica still keeps the user's previous one; past it the answer uses the previous vector and says `user_vector_stale` in `degraded`, and the rebuild goes on and is cached for the user's next request. Bounds what a slow Redis adds to such a `rank`. `0`: always wait.",
  },
  RANK_STALE_REBUILDS_MAX: {
    group: 'Ranking',
    description:
      'Rebuilds of the vectors of users who just interacted (see `RANK_STALE_USER_WAIT_MS`) in flight at most per replica; a user\'s requests meanwhile share one. Past it such a user is answered at once with the kept vector (`user_vector_stale`) and rebuilt on a later request (`ranking_user_vector_rebuilds_total{result="skipped"}`). A rebuild takes a Redis round trip, or PostgreSQL reads while Redis is slow or down: unbounded, they once queued on the query pool by the hundred while the replica fell behind (docs/performance.md, “Rebuilds in flight bounded”).',
  },
  RANK_RECOMMEND_MAX: { group: 'Ranking', description: 'Largest `first` of `recommend`.' },
  RANK_RECOMMEND_POOL: {
    group: 'Ranking',
    description:
      'Nearest catalog items `recommend` retrieves before re-ranking them with the profile (at least `first` are retrieved).',
  },
  RECOMMEND_ANN_MIN_ITEMS: {
    group: 'Ranking',
    description:
      'Item vectors a served version needs before `recommend` retrieves through an ANN (HNSW) index; below, and while the index builds, the exact scan answers. See docs/ranking.md, ANN retrieval.',
  },
  RECOMMEND_ANN_CANDIDATES: {
    group: 'Ranking',
    description:
      'Rows `recommend` asks of the ANN index (at least its pool); they and the items changed since the build are re-scored exactly with the model.',
  },
  RECOMMEND_ANN_MAX_DELTA: {
    group: 'Ranking',
    description:
      'Items embedded, re-embedded or deleted since the index build that `recommend` scans exactly besides the index; beyond this many a new index is built in the background.',
  },
  RECOMMEND_ANN_M: {
    group: 'Ranking',
    description: 'HNSW links per item (recall, memory and build time grow with it).',
  },
  RECOMMEND_ANN_EF_CONSTRUCTION: {
    group: 'Ranking',
    description: 'HNSW candidate list while building (recall and build time grow with it).',
  },
  RECOMMEND_ANN_EF_SEARCH: {
    group: 'Ranking',
    description:
      'HNSW candidate list while searching, at least `RECOMMEND_ANN_CANDIDATES` (recall and search time grow with it; at 1,000,000 items 600 gave recall@20 0.972 against 0.964 at 400 in the same search time, `npm run bench -- ann-recall`).',
  },
  RECOMMEND_ANN_STORE: {
    group: 'Ranking',
    description:
      'Keep each built ANN index in PostgreSQL (`retrieval_indexes`), and open a version’s stored index, checked against the replica’s vectors, before building one: a replica that starts or swaps to a version another replica indexed serves through the index in seconds instead of after a build (40 minutes at 1,000,000 items here). See docs/ranking.md, ANN retrieval.',
  },
  RECOMMEND_ANN_PREBUILD: {
    group: 'Ranking',
    description:
      'The process that registers a trained version (the train role, or `train --once`) builds and stores its ANN index right away when the catalog has at least `RECOMMEND_ANN_MIN_ITEMS` item vectors, holding the build lease from registration: replicas that serve the version open that index instead of building one. Needs `RECOMMEND_ANN_STORE`, and the same `RECOMMEND_ANN_M` and `RECOMMEND_ANN_EF_CONSTRUCTION` as the api role. See docs/ranking.md, ANN retrieval.',
  },
  RECOMMEND_ANN_ADOPT: {
    group: 'Ranking',
    description:
      'A version without a stored ANN index first tries the stored graph of another version built alike (a served version’s first, else the newest): its points take this version’s vectors and the links stay. Kept (and stored for the other replicas) when its items moved at most `RECOMMEND_ANN_ADOPT_MAX_DRIFT_DEGREES` on average since the graph was built and its recall@20, sampled on 64 items’ vectors against the exact scan, is at most `RECOMMEND_ANN_ADOPT_RECALL_LOSS` below that build’s; else the index is built. A version fine-tuned from the served one moves its items little: at 300,000 items this took 60 s from registration to stored instead of 605 s for a build. Needs `RECOMMEND_ANN_STORE`. See docs/ranking.md, ANN retrieval.',
  },
  RECOMMEND_ANN_ADOPT_MAX_DRIFT_DEGREES: {
    group: 'Ranking',
    description:
      'How far (the mean angle between each item’s vector in the graph and in the version) items may have moved since an adopted graph was built; adoptions in a row add up. At 100,000 items, items moved 5.7° on average cost recall@20 0.006–0.008 against a fresh build, 16.7° cost 0.011–0.024, 30.9° cost 0.055–0.123 (`npm run bench -- ann-recall --drift`; docs/performance.md, Adopted graphs).',
  },
  RECOMMEND_ANN_ADOPT_RECALL_LOSS: {
    group: 'Ranking',
    description:
      'How much sampled recall@20 an adopted graph may lose against the fresh build it descends from (see `RECOMMEND_ANN_ADOPT`); losses over adoptions in a row add up, so a graph is rebuilt once they pass this. A second guard beside `RECOMMEND_ANN_ADOPT_MAX_DRIFT_DEGREES`: the sample (items’ own vectors as queries) sees less of a moved graph’s loss than users do, but catches vectors that have nothing to do with the graph.',
  },
  RECOMMEND_ANN_STORED_VERSIONS: {
    group: 'Ranking',
    description:
      'Stored ANN indexes are kept for this many versions (the most recently stored), and always for the versions being served (the active one, the running experiment’s arms), however many candidates were indexed since; a version’s older indexes go when a newer one is stored.',
  },
  RECOMMEND_ANN_SCRATCH_DIR: {
    group: 'Ranking',
    description:
      'Directory an ANN index file passes through on its way to and from PostgreSQL (hnswlib reads and writes files): about 2 GB at 1,000,000 items, removed once read or stored. Default: the OS temporary directory.',
  },
  RANK_PROFILE_REFRESH_MS: {
    group: 'Ranking',
    description:
      'How often an api replica re-reads `ranking_profiles`; an edited profile reaches every replica within this time.',
  },
  EXPERIMENT_REFRESH_MS: {
    group: 'Experiments',
    description:
      'How often an api replica re-reads the running experiment ([experiments.md](experiments.md)); a started, stopped or promoted experiment reaches every replica within this time.',
  },
  EXPERIMENT_JUDGE_INTERVAL_MS: {
    group: 'Experiments',
    description:
      'How often an api replica reads the running experiment’s online figures: it refreshes the per-arm gauges and judges a canary that has its impressions (promote, or roll back with the reason). Every replica judges; the first to record the outcome wins.',
  },
  EXPERIMENT_VERSION_WINDOW_HOURS: {
    group: 'Experiments',
    description:
      'The window of a model version’s own online figures (`modelVersions { online }`): slates it served in the last this many hours.',
  },
  CANARY_MIN_IMPRESSIONS: {
    group: 'Experiments',
    description:
      'Impressions each arm of a canary needs before it is judged, when `activateModelVersion` names none. Fewer decide faster and miss smaller harms: see the impressions-needed figure of the report.',
  },
  EXPERIMENT_ATTRIBUTION_DELAY_MS: {
    group: 'Experiments',
    description:
      'Age a served slate must reach before the online figures (experiment reports, the canary judge, `modelVersions { online }`) count it, so that its impression and click events are stored first ([experiments.md](experiments.md#what-the-figures-mean)). Above the storefront’s event delay plus the ingest lag; a canary is judged this much later.',
  },
  SERVED_LOG_ENABLED: {
    group: 'Served-slate log',
    description:
      'Record every `rank` and `recommend` answer to `rank.served` (request id, user, time, model version, profile, and per item its position, score and feature values) for training and evaluation ([served-log.md](served-log.md)). `false`: nothing is recorded.',
  },
  SERVED_LOG_DEPTH: {
    group: 'Served-slate log',
    description:
      'Items of each answer that are logged: the first ones in served order (the logged `candidates` still counts all ranked). A slate must fit 1 MB on the wire: about depth × (5.4 × (inputs + 1) + the id length) bytes, 1.2 KB at 20 items with 6 inputs. Encoding and sending cost grows with the bytes (docs/performance.md).',
  },
  SERVED_LOG_BUFFER: {
    group: 'Served-slate log',
    description:
      'Slates an api replica holds while they wait for Kafka; when it is full (Kafka slow or down) further slates are dropped and counted in `served_log_slates_total{outcome="dropped_buffer_full"}`, never waited for. A slate is held encoded: about 1.2 KB at 20 items with 6 inputs (2.8 KB at 50), so a full buffer at the defaults takes about 25 MB.',
  },
  SERVED_LOG_BATCH: {
    group: 'Served-slate log',
    description:
      'Slates per Kafka send; as soon as this many are waiting they are sent without waiting for `SERVED_LOG_FLUSH_MS`.',
  },
  SERVED_LOG_FLUSH_MS: {
    group: 'Served-slate log',
    description:
      'Longest a recorded slate waits before it is sent (encoded when recorded, kept as bytes outside the JavaScript heap until then).',
  },
  EVENTS_RETENTION_DAYS: {
    group: 'Ingest',
    description:
      'Days of `events` kept: the ingest role drops the daily partitions that ended longer ago (at start and hourly). 0 keeps every day.',
  },
  EVENTS_PARTITIONS_AHEAD_DAYS: {
    group: 'Ingest',
    description:
      'Daily `events` partitions the ingest role keeps created ahead of today (at start and hourly); events of a day without one wait in the default partition.',
  },
  SERVED_LOG_RETENTION_DAYS: {
    group: 'Served-slate log',
    description:
      'Days of `served_slates` kept: the ingest role drops the daily partitions that ended longer ago (hourly) and skips older slates it consumes.',
  },
  GRAPHQL_MAX_COMPLEXITY: {
    group: 'GraphQL',
    description: 'Most fields one GraphQL operation may select, fragments counted at every spread.',
  },
  GRAPHQL_MAX_ALIASES: { group: 'GraphQL', description: 'Most aliases in one GraphQL operation.' },
  GRAPHQL_MAX_DOCUMENT_BYTES: {
    group: 'GraphQL',
    description:
      'Longest GraphQL document in UTF-8 bytes, refused before parsing; data belongs in variables.',
  },
  GRAPHQL_FAST_PATH: {
    group: 'GraphQL',
    description:
      'graphql-jit with variables coerced once and object fields read as properties (src/graphql/fast-path); `false` serves plain Mercurius, with the same responses and the same request limits.',
  },
  GRAPHQL_MAX_LIST_LENGTH: {
    group: 'GraphQL',
    description:
      'Most elements of any list in a request’s variables, checked on the raw JSON before GraphQL coerces them. Must be at least `RANK_MAX_CANDIDATES`.',
  },
  AUTH_MODE: {
    group: 'Auth',
    description:
      '`api-key`: every GraphQL operation but `health` needs an API key ([authentication](graphql.md#authentication)). `off`: none does, and a warning is logged at start; for a local demo only (`npm start` sets it).',
  },
  AUTH_RATE_LIMIT_READ_PER_SECOND: {
    group: 'Auth',
    description:
      'Requests per second per `read` key and per api replica, unless the key sets its own limit; the burst is twice the rate.',
  },
  AUTH_RATE_LIMIT_OPS_PER_SECOND: {
    group: 'Auth',
    description:
      'Requests per second per `ops` key and per api replica, unless the key sets its own limit; the burst is twice the rate.',
  },
};
