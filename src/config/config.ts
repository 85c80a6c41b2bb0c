import { tmpdir } from 'node:os';
import { z } from 'zod';
import { parseCron } from '../common/cron';

export const ROLES = ['api', 'ingest', 'train', 'all'] as const;
export type Role = (typeof ROLES)[number];

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** Most items one logged slate carries: SERVED_LOG_DEPTH's bound, and the consumer refuses more. */
export const MAX_SERVED_LOG_DEPTH = 1000;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max);

const url = (protocols: string[]) =>
  z
    .string()
    .url()
    .refine((value) => protocols.some((p) => value.startsWith(`${p}://`)), {
      message: `must start with ${protocols.map((p) => `${p}://`).join(' or ')}`,
    });

const csv = z
  .string()
  .transform((value) =>
    value
      .split(',')
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  )
  .refine((parts) => parts.length > 0, { message: 'must list at least one entry' });

/** `host:port` with a port in 1..65535; undefined when malformed. */
function hostPort(value: string): { host: string; port: number } | undefined {
  const match = /^(.+):([0-9]{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (match === null || port < 1 || port > 65535) return undefined;
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port };
}

const bool = z
  .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
  .transform((value) => value === 'true' || value === '1');

function cronError(expression: string): string | undefined {
  try {
    parseCron(expression).next(new Date());
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Every environment variable the service reads, with its default. Each needs an entry in
 * `CONFIG_DOCS` (config-docs.ts); `npm run docs:config` renders both into docs/configuration.md.
 */
export const configSchema = z.object({
  ROLE: z.enum(ROLES).default('all'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: int(0, 65535).default(3000),
  OPS_PORT: int(0, 65535).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(LOG_FORMATS).default('auto'),
  DATABASE_URL: url(['postgres', 'postgresql']).default(
    'postgres://postgres@127.0.0.1:5432/recsys',
  ),
  DATABASE_DIRECT_URL: url(['postgres', 'postgresql']).optional(),
  PG_POOLER: z.enum(['none', 'transaction']).default('none'),
  PG_POOL_MAX: int(1, 1000).default(10),
  PG_STATEMENT_TIMEOUT_MS: int(0).default(10_000),
  REDIS_URL: url(['redis', 'rediss']).default('redis://127.0.0.1:6379'),
  REDIS_KEY_PREFIX: z
    .string()
    .refine((value) => !/[{}]/.test(value), { message: 'must not contain { or }' })
    .default('recsys:'),
  REDIS_CLUSTER_NODES: csv
    .refine((nodes) => nodes.every((node) => hostPort(node) !== undefined), {
      message: 'must list host:port entries',
    })
    .optional(),
  REDIS_READ_TIMEOUT_MS: int(1, 60_000).default(250),
  REDIS_PING_TIMEOUT_MS: int(100, 600_000).default(5000),
  KAFKA_BROKERS: csv.default('127.0.0.1:9092'),
  KAFKA_CLIENT_ID: z.string().min(1).default('recsys'),
  KAFKA_TOPIC_PREFIX: z.string().default(''),
  KAFKA_TOPIC_PARTITIONS: int(1, 100_000).default(6),
  KAFKA_TOPIC_REPLICATION_FACTOR: int(1, 32767).optional(),
  KAFKA_DEAD_LETTER_RETENTION_DAYS: int(1, 36_500).default(30),
  KAFKA_SSL: bool.default('false'),
  KAFKA_SSL_CA_FILE: z.string().min(1).optional(),
  KAFKA_SASL_MECHANISM: z.enum(['none', 'plain', 'scram-sha-256', 'scram-sha-512']).default('none'),
  KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  KAFKA_SASL_PASSWORD: z.string().min(1).optional(),
  HEALTH_TIMEOUT_MS: int(100, 60_000).default(2000),
  SHUTDOWN_TIMEOUT_MS: int(100, 120_000).default(10_000),
  INGEST_EVENTS_GROUP_ID: z.string().min(1).default('recsys-ingest-events'),
  INGEST_ITEMS_GROUP_ID: z.string().min(1).default('recsys-ingest-items'),
  INGEST_SERVED_GROUP_ID: z.string().min(1).default('recsys-ingest-served'),
  INGEST_MAX_VALUE_BYTES: int(64, 16 * 1024 * 1024).default(65_536),
  INGEST_MAX_CLOCK_SKEW_MS: int(0, 7 * 86_400_000).default(300_000),
  INGEST_BATCH_SIZE: int(1, 100_000).default(20_000),
  INGEST_PARTITIONS_CONCURRENCY: int(1, 64).default(6),
  INGEST_FETCH_MAX_BYTES_PER_PARTITION: int(1024, 64 * 1024 * 1024).default(4_194_304),
  INGEST_RETRY_INITIAL_MS: int(1, 60_000).default(200),
  INGEST_RETRY_MAX_MS: int(1, 600_000).default(5000),
  INGEST_SESSION_TIMEOUT_MS: int(6000, 300_000).default(30_000),
  ONLINE_RECENT_CAP: int(1, 10_000).default(100),
  ONLINE_POPULARITY_HALF_LIFE_HOURS: z.coerce.number().positive().default(24),
  ONLINE_CATCH_UP_INTERVAL_MS: int(100, 3_600_000).default(5000),
  TRAIN_CRON: z
    .string()
    .default('0 * * * *')
    .superRefine((value, context) => {
      const error = value === 'off' ? undefined : cronError(value);
      if (error !== undefined) context.addIssue({ code: 'custom', message: `${error} (or "off")` });
    }),
  TRAIN_MIN_NEW_EVENTS: int(0).default(1000),
  TRAIN_PROMOTION_TOLERANCE: z.coerce.number().min(0).max(1).default(0.005),
  TRAIN_BACKEND: z.enum(['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  TRAIN_EPOCHS: int(1, 1000).default(4),
  TRAIN_BATCH_SIZE: int(1, 65_536).default(256),
  TRAIN_LEARNING_RATE: z.coerce.number().positive().max(1).default(0.003),
  TRAIN_VALIDATION_FRACTION: z.coerce.number().min(0).max(0.5).default(0.1),
  TRAIN_REPLAY_RATIO: z.coerce.number().min(0).max(100).default(1),
  TRAIN_MAX_EVENTS: int(1).default(2_000_000),
  TRAIN_WINDOW_DAYS: int(0, 36_500).default(0),
  TRAIN_SEED: int(0).default(42),
  TRAIN_SHOWN_DEPTH: int(1, 1000).default(10),
  TRAIN_COMBINER: bool.default('true'),
  TRAIN_COMBINER_MIN_SLATES: int(2).default(200),
  TRAIN_TOKEN_ATTENTION: bool.default('false'),
  TRAIN_ENCODER_TOP_LAYERS: int(0, 2).default(0),
  TRAIN_ENCODER_LEARNING_RATE: z.coerce.number().positive().max(1).default(0.00002),
  TRAIN_QUEUE_POLL_MS: int(100, 3_600_000).default(5000),
  TRAIN_EMBEDDING_WAIT_MS: int(0, 86_400_000).default(600_000),
  MODEL_POLL_INTERVAL_MS: int(100, 3_600_000).default(30_000),
  EMBEDDING_MODEL: z.string().min(1).default('all-MiniLM-L6-v2'),
  EMBEDDING_MODEL_DIR: z.string().min(1).default('models'),
  EMBEDDING_QUANTIZED: bool.default('false'),
  EMBEDDING_ALLOW_REMOTE: bool.default('false'),
  EMBEDDING_THREADS: int(1, 64).default(1),
  EMBEDDING_BATCH_SIZE: int(1, 1024).default(8),
  EMBEDDING_WORKER_BATCH: int(1, 10_000).default(128),
  EMBEDDING_POLL_INTERVAL_MS: int(100, 3_600_000).default(30_000),
  EMBEDDING_ONDEMAND_MAX_BATCH: int(1, 1024).default(32),
  EMBEDDING_ONDEMAND_MAX_WAIT_MS: int(0, 1000).default(5),
  EMBEDDING_ONDEMAND_MAX_QUEUE: int(1, 100_000).default(128),
  RANK_MAX_CANDIDATES: int(1, 100_000).default(1000),
  RANK_TIMEOUT_MS: int(10, 60_000).default(2000),
  RANK_HISTORY_LENGTH: int(1, 10_000).default(50),
  RANK_USER_VECTOR_TTL_SECONDS: int(1, 30 * 86_400).default(86_400),
  RANK_USER_VECTOR_LOCAL_CAPACITY: int(0, 10_000_000).default(50_000),
  RANK_STALE_USER_WAIT_MS: int(0, 60_000).default(10),
  RANK_STALE_REBUILDS_MAX: int(1, 100_000).default(16),
  RANK_RECOMMEND_MAX: int(1, 10_000).default(200),
  RANK_RECOMMEND_POOL: int(1, 100_000).default(200),
  RANK_PROFILE_REFRESH_MS: int(100, 3_600_000).default(5000),
  RANK_CATALOG_REFRESH_MS: int(100, 3_600_000).default(1000),
  RANK_CATALOG_PAGE_ROWS: int(100, 1_000_000).default(10_000),
  RANK_POPULARITY_SYNC_MS: int(0, 60_000).default(250),
  RECOMMEND_ANN_MIN_ITEMS: int(0).default(50_000),
  RECOMMEND_ANN_CANDIDATES: int(1, 100_000).default(600),
  RECOMMEND_ANN_MAX_DELTA: int(0).default(10_000),
  RECOMMEND_ANN_M: int(2, 100).default(48),
  RECOMMEND_ANN_EF_CONSTRUCTION: int(1, 10_000).default(200),
  RECOMMEND_ANN_EF_SEARCH: int(1, 100_000).default(600),
  RECOMMEND_ANN_STORE: bool.default('true'),
  RECOMMEND_ANN_PREBUILD: bool.default('true'),
  RECOMMEND_ANN_STORED_VERSIONS: int(1, 1000).default(3),
  RECOMMEND_ANN_ADOPT: bool.default('true'),
  RECOMMEND_ANN_ADOPT_RECALL_LOSS: z.coerce.number().min(0).max(1).default(0.02),
  RECOMMEND_ANN_ADOPT_MAX_DRIFT_DEGREES: z.coerce.number().min(0).max(180).default(12),
  RECOMMEND_ANN_SCRATCH_DIR: z.string().min(1).default(tmpdir()),
  SERVED_LOG_ENABLED: bool.default('true'),
  SERVED_LOG_DEPTH: int(1, MAX_SERVED_LOG_DEPTH).default(20),
  SERVED_LOG_BUFFER: int(1, 10_000_000).default(20_000),
  SERVED_LOG_BATCH: int(1, 100_000).default(500),
  SERVED_LOG_FLUSH_MS: int(1, 60_000).default(200),
  SERVED_LOG_RETENTION_DAYS: int(1, 3650).default(30),
  EVENTS_RETENTION_DAYS: int(0, 36_500).default(0),
  EVENTS_PARTITIONS_AHEAD_DAYS: int(1, 366).default(3),
  EXPERIMENT_REFRESH_MS: int(100, 3_600_000).default(2000),
  EXPERIMENT_JUDGE_INTERVAL_MS: int(100, 3_600_000).default(15_000),
  EXPERIMENT_VERSION_WINDOW_HOURS: int(1, 24 * 3650).default(24),
  CANARY_MIN_IMPRESSIONS: int(1).default(5000),
  EXPERIMENT_ATTRIBUTION_DELAY_MS: int(0, 86_400_000).default(60_000),
  GRAPHQL_MAX_COMPLEXITY: int(1, 1_000_000).default(500),
  GRAPHQL_MAX_ALIASES: int(0, 10_000).default(20),
  GRAPHQL_MAX_DOCUMENT_BYTES: int(256, 4 * 1024 * 1024).default(16_384),
  GRAPHQL_MAX_LIST_LENGTH: int(1, 1_000_000).default(1000),
  GRAPHQL_FAST_PATH: bool.default('true'),
  AUTH_MODE: z.enum(['api-key', 'off']).default('api-key'),
  AUTH_RATE_LIMIT_READ_PER_SECOND: int(1, 1_000_000_000).default(1000),
  AUTH_RATE_LIMIT_OPS_PER_SECOND: int(1, 1_000_000_000).default(20),
});

export type RawConfig = z.infer<typeof configSchema>;

export interface AppConfig {
  readonly role: Role;
  readonly http: {
    readonly host: string;
    readonly port: number;
    /** When set, health and metrics are served only on this port (never authenticated). */
    readonly opsPort: number | null;
  };
  readonly logLevel: RawConfig['LOG_LEVEL'];
  /** `auto`: pretty lines when stdout is a terminal, else JSON (decided as the logger starts). */
  readonly logFormat: LogFormat;
  readonly postgres: {
    /** Ordinary queries: may go through a transaction-mode pooler (PgBouncer). */
    readonly url: string;
    /**
     * A direct connection for what a transaction pooler breaks: LISTEN, session advisory locks
     * (training, embedding), migrations, and the health ping. DATABASE_URL when not set.
     */
    readonly directUrl: string;
    /**
     * What `url` reaches: PostgreSQL itself, or a transaction-mode pooler, which refuses session
     * settings at connect (the statement timeout) and shares server sessions between clients.
     */
    readonly pooler: 'none' | 'transaction';
    readonly poolMax: number;
    readonly statementTimeoutMs: number;
  };
  readonly redis: {
    readonly url: string;
    readonly keyPrefix: string;
    /** Redis Cluster seed nodes; null: the standalone server at `url`. */
    readonly clusterNodes: readonly { readonly host: string; readonly port: number }[] | null;
    /** How long a read on a request's path waits for Redis before its fallback (OnlineStateReader). */
    readonly readTimeoutMs: number;
    /** How long a connection's liveness PING may go unanswered before it is reconnected. */
    readonly pingTimeoutMs: number;
  };
  readonly kafka: {
    readonly brokers: readonly string[];
    readonly clientId: string;
    readonly topicPrefix: string;
    /** What `node dist/main.js topics` gives the topics it creates; null: the broker's default. */
    readonly newTopics: {
      readonly partitions: number;
      readonly replicationFactor: number | null;
      readonly deadLetterRetentionDays: number;
    };
    /** TLS to the brokers; `caFile`: a PEM bundle to trust instead of the system's. */
    readonly ssl: { readonly caFile: string | null } | null;
    readonly sasl: {
      readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
      readonly username: string;
      readonly password: string;
    } | null;
  };
  readonly healthTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly ingest: {
    /** Consumer group ids; prefixed with the Kafka topic prefix like the topics. */
    readonly eventsGroupId: string;
    readonly itemsGroupId: string;
    readonly servedGroupId: string;
    readonly maxValueBytes: number;
    /**
     * How far an event's `timestamp` or an item's `updatedAt`/`createdAt` may lie ahead of the
     * broker's time (the message timestamp, or now if that is later); further is dead-lettered.
     */
    readonly maxClockSkewMs: number;
    /** Most messages stored in one PostgreSQL transaction. */
    readonly batchSize: number;
    readonly partitionsConcurrency: number;
    readonly fetchMaxBytesPerPartition: number;
    readonly retryInitialMs: number;
    readonly retryMaxMs: number;
    /** How long a silent (dead) consumer keeps its partitions. */
    readonly sessionTimeoutMs: number;
  };
  readonly online: {
    readonly recentCap: number;
    readonly popularityHalfLifeMs: number;
    readonly catchUpIntervalMs: number;
  };
  readonly modelLifecycle: {
    /** When the train role fine-tunes (UTC cron); null = never on its own. */
    readonly trainCron: string | null;
    /** Events since the active version below which a scheduled run is skipped. */
    readonly trainMinNewEvents: number;
    /** Largest AUC drop versus the active version that still promotes automatically. */
    readonly promotionTolerance: number;
    /** How often a replica re-reads the active version, in case a NOTIFY was missed. */
    readonly pollIntervalMs: number;
    /** How often a train process looks for queued runs, in case a NOTIFY was missed. */
    readonly queuePollMs: number;
    /** How long a queued run waits for catalog items still waiting for their text vectors. */
    readonly embeddingWaitMs: number;
  };
  readonly training: {
    /** tfjs backend; `auto` = tensorflow-gpu > tensorflow > wasm > cpu, the first that loads. */
    readonly backend: 'auto' | 'tensorflow-gpu' | 'tensorflow' | 'wasm' | 'cpu';
    readonly epochs: number;
    readonly batchSize: number;
    readonly learningRate: number;
    /** Latest share of the training window held out (time-based) for validation metrics. */
    readonly validationFraction: number;
    /** Older impressions replayed per new one in incremental fine-tuning. */
    readonly replayRatio: number;
    /** Most impression and click events one run reads (the newest). */
    readonly maxEvents: number;
    /** Days back from now one run reads events from (its clicks' histories too); 0: all stored. */
    readonly windowDays: number;
    readonly seed: number;
    /** Items of a logged slate that count as shown where producers send no impression events. */
    readonly shownDepth: number;
    /** Fit the learned combiner with each version (on slates of the held-out window). */
    readonly combiner: boolean;
    /** Clicked, logged slates the held-out window needs before a combiner is fitted. */
    readonly combinerMinSlates: number;
    /**
     * The item tower pools the encoder's token states with a learned attention instead of
     * adapting its mean-pooled vector (docs/model-lifecycle.md#fine-tuned-encoder-layers).
     */
    readonly tokenAttention: boolean;
    /** The encoder's top layers each version fine-tunes (0–2; needs `tokenAttention`). */
    readonly encoderTopLayers: number;
    readonly encoderLearningRate: number;
  };
  readonly embedding: {
    /** Folder name under `modelDir`, or a hub id (needs `allowRemote`). */
    readonly model: string;
    readonly modelDir: string;
    readonly quantized: boolean;
    readonly allowRemote: boolean;
    /** ONNX Runtime intra-op threads. */
    readonly threads: number;
    /** Most texts per model run. */
    readonly batchSize: number;
    /** Items the worker claims, encodes and stores per transaction. */
    readonly workerBatch: number;
    /** Safety-net poll; notifications from PostgreSQL normally wake the worker at once. */
    readonly pollIntervalMs: number;
    readonly onDemandMaxBatch: number;
    /** Most texts waiting for on-demand encoding per replica; more are refused. */
    readonly onDemandMaxQueue: number;
    readonly onDemandMaxWaitMs: number;
  };
  readonly ranking: {
    readonly maxCandidates: number;
    readonly timeoutMs: number;
    /** Most recent interactions pooled into the user's interest vector. */
    readonly historyLength: number;
    readonly userVectorTtlSeconds: number;
    /** Users whose interest vectors a replica keeps in memory (approximately least recently used go); 0: none. */
    readonly userVectorLocalCapacity: number;
    /** How long `rank` waits for a rebuilt user vector before answering with the kept stale one; 0: until it is built. */
    readonly staleUserWaitMs: number;
    /** Rebuilds of just-interacted users' vectors in flight at most (past it: the kept vector). */
    readonly staleRebuildsMax: number;
    /** Largest `first` of `recommend`. */
    readonly recommendMax: number;
    /** Nearest neighbours retrieved before re-ranking (at least `first`). */
    readonly recommendPool: number;
    readonly profileRefreshMs: number;
    /**
     * How often a replica reads what changed in the catalog: item features, deletions, and text
     * vectors stored since (items embedded after a model swap are scored within about this long).
     */
    readonly catalogRefreshMs: number;
    /**
     * Rows per statement when a replica reads the whole catalog (its features at start, its text
     * vectors at a model load): each page is one query, so a catalog of any size loads within
     * PG_STATEMENT_TIMEOUT_MS (10,000 rows of 384-d vectors: about 0.1 s).
     */
    readonly catalogPageRows: number;
    /**
     * How often a replica applies the `pop-changes` stream to its in-memory copy of every item's
     * popularity and reads `interest-changes` for its in-memory interest vectors; 0: neither, each
     * request reads Redis.
     */
    readonly popularitySyncMs: number;
  };
  /**
   * `recommend`'s retrieval (src/modules/serving/retrieval.ts): an HNSW index per served version
   * above `annMinItems` item vectors, its candidates re-scored exactly; the exact scan below.
   */
  readonly retrieval: {
    /** Fewer item vectors than this: the exact scan (and no index is built). */
    readonly annMinItems: number;
    /** Rows asked of the index per request (at least `recommendPool`), re-scored exactly. */
    readonly annCandidates: number;
    /** Items embedded, re-embedded or deleted since the build beyond which it is rebuilt. */
    readonly annMaxDelta: number;
    /** HNSW links per node (memory and recall grow with it). */
    readonly m: number;
    /** HNSW candidate list while building (build time and recall grow with it). */
    readonly efConstruction: number;
    /** HNSW candidate list while searching (at least the rows asked for). */
    readonly efSearch: number;
    /**
     * Keep each built index in PostgreSQL, and open the stored one of a version before building
     * (serving/stored-index.service.ts).
     */
    readonly store: boolean;
    /**
     * The process that registers a version (the train role) builds and stores its index right
     * away, before replicas serve it (serving/index-prebuild.service.ts); needs `store`.
     */
    readonly prebuild: boolean;
    /**
     * Stored indexes are kept for this many versions, the most recently stored, besides the
     * versions being served (active, the running experiment's arms).
     */
    readonly storedVersions: number;
    /**
     * A version's index may keep another version's stored graph with its own vectors instead of
     * a build, when its items moved at most `adoptMaxDriftDegrees` on average since the graph was
     * built and its sampled recall is at most `adoptRecallLoss` below that build's
     * (serving/hnsw-graph.ts); needs `store`.
     */
    readonly adopt: boolean;
    readonly adoptRecallLoss: number;
    readonly adoptMaxDriftDegrees: number;
    /** Where index files are written on their way to and from PostgreSQL (about 2 GB at 1M). */
    readonly scratchDir: string;
  };
  /** The served-slate log (src/modules/served-log): what every `rank`/`recommend` answer showed. */
  readonly servedLog: {
    /** Off: `record` does nothing (the ingest role still consumes what was logged). */
    readonly enabled: boolean;
    /** Items of a slate logged (the first ones, in served order). */
    readonly depth: number;
    /** Slates an api replica holds unsent; more are dropped and counted. */
    readonly bufferSlates: number;
    /** Slates per Kafka send; a full batch is sent at once. */
    readonly batchSlates: number;
    /** Longest a recorded slate waits for its send. */
    readonly flushMs: number;
    /** Days of `served_slates` partitions kept; the ingest role drops older ones. */
    readonly retentionDays: number;
  };
  /** Storage of `events`: daily partitions, kept by the ingest role (docs/operations/retention.md). */
  readonly events: {
    /** Days of events kept: older daily partitions are dropped; 0 keeps every day. */
    readonly retentionDays: number;
    /** Daily partitions created ahead of today. */
    readonly partitionsAheadDays: number;
  };
  /** Online experiments and canaries (src/modules/experiments). */
  readonly experiments: {
    /** How often an api replica re-reads the running experiment (an edit reaches all within it). */
    readonly refreshMs: number;
    /** How often a running canary's figures are read and judged; also refreshes the gauges. */
    readonly judgeIntervalMs: number;
    /** The window of a model version's own online figures (`modelVersions { online }`). */
    readonly versionWindowHours: number;
    /** Impressions each arm of a canary needs before it is judged, unless the call says. */
    readonly canaryMinImpressions: number;
    /**
     * Age a served slate must reach before online figures count it: its impression and click
     * events arrive after it, and until they are stored it would count as shown and not clicked.
     */
    readonly attributionDelayMs: number;
  };
  readonly graphql: {
    /** Most fields in one operation, fragments expanded. */
    readonly maxComplexity: number;
    readonly maxAliases: number;
    /** Longest query document (UTF-8 bytes); bulk data belongs in variables. */
    readonly maxDocumentBytes: number;
    /** Most elements of any list in the variables, checked before GraphQL coerces them. */
    readonly maxListLength: number;
    /**
     * graphql-jit with variables coerced once and object fields read as properties
     * (src/graphql/fast-path); off: plain Mercurius, to tell a fast-path bug from any other.
     */
    readonly fastPath: boolean;
  };
  readonly auth: {
    /** `off` accepts every GraphQL request without a key (local demo only). */
    readonly mode: 'api-key' | 'off';
    /** Requests per second per key and replica when the key sets no override; burst is twice. */
    readonly rateLimitPerSecond: { readonly read: number; readonly ops: number };
  };
}

export class ConfigError extends Error {
  constructor(readonly issues: readonly string[]) {
    super(`Invalid configuration:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment once; a missing or malformed variable fails with its name. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): AppConfig {
  const present = Object.fromEntries(
    Object.keys(configSchema.shape).flatMap((key) => {
      const value = env[key];
      return value === undefined || value === '' ? [] : [[key, value]];
    }),
  );
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = issue.path.join('.');
        return `${name}=${JSON.stringify(env[name] ?? '')}: ${issue.message}`;
      }),
    );
  }
  const c = parsed.data;
  if (c.OPS_PORT !== undefined && c.OPS_PORT !== 0 && c.OPS_PORT === c.PORT) {
    throw new ConfigError([`OPS_PORT=${JSON.stringify(env.OPS_PORT)}: must differ from PORT`]);
  }
  if (c.KAFKA_SASL_MECHANISM !== 'none') {
    for (const name of ['KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD'] as const) {
      if (c[name] === undefined) {
        throw new ConfigError([
          `${name}="": required with KAFKA_SASL_MECHANISM=${c.KAFKA_SASL_MECHANISM}`,
        ]);
      }
    }
  }
  if (
    c.PG_POOLER === 'transaction' &&
    (c.DATABASE_DIRECT_URL === undefined || c.DATABASE_DIRECT_URL === c.DATABASE_URL)
  ) {
    throw new ConfigError([
      `DATABASE_DIRECT_URL=${JSON.stringify(c.DATABASE_DIRECT_URL ?? '')}: required with PG_POOLER=transaction, and not DATABASE_URL (LISTEN, session advisory locks and migrations cannot go through a transaction-mode pooler)`,
    ]);
  }
  if (c.KAFKA_SSL_CA_FILE !== undefined && !c.KAFKA_SSL) {
    throw new ConfigError([
      `KAFKA_SSL_CA_FILE=${JSON.stringify(c.KAFKA_SSL_CA_FILE)}: needs KAFKA_SSL=true`,
    ]);
  }
  if (c.GRAPHQL_MAX_LIST_LENGTH < c.RANK_MAX_CANDIDATES) {
    throw new ConfigError([
      `GRAPHQL_MAX_LIST_LENGTH=${JSON.stringify(env.GRAPHQL_MAX_LIST_LENGTH ?? '')}: must be at least RANK_MAX_CANDIDATES (${c.RANK_MAX_CANDIDATES})`,
    ]);
  }
  if (c.TRAIN_ENCODER_TOP_LAYERS > 0 && !c.TRAIN_TOKEN_ATTENTION) {
    throw new ConfigError([
      `TRAIN_ENCODER_TOP_LAYERS=${JSON.stringify(env.TRAIN_ENCODER_TOP_LAYERS ?? '')}: needs TRAIN_TOKEN_ATTENTION=true (the fine-tuned layers feed the token attention)`,
    ]);
  }
  if (c.EVENTS_RETENTION_DAYS > 0 && c.TRAIN_WINDOW_DAYS > c.EVENTS_RETENTION_DAYS) {
    throw new ConfigError([
      `TRAIN_WINDOW_DAYS=${JSON.stringify(env.TRAIN_WINDOW_DAYS ?? '')}: must not exceed EVENTS_RETENTION_DAYS (${c.EVENTS_RETENTION_DAYS}); older events are dropped`,
    ]);
  }
  return {
    role: c.ROLE,
    http: { host: c.HOST, port: c.PORT, opsPort: c.OPS_PORT ?? null },
    logLevel: c.LOG_LEVEL,
    logFormat: c.LOG_FORMAT,
    postgres: {
      url: c.DATABASE_URL,
      directUrl: c.DATABASE_DIRECT_URL ?? c.DATABASE_URL,
      pooler: c.PG_POOLER,
      poolMax: c.PG_POOL_MAX,
      statementTimeoutMs: c.PG_STATEMENT_TIMEOUT_MS,
    },
    redis: {
      url: c.REDIS_URL,
      keyPrefix: c.REDIS_KEY_PREFIX,
      clusterNodes:
        c.REDIS_CLUSTER_NODES?.flatMap((node) => {
          const parsed = hostPort(node);
          return parsed === undefined ? [] : [parsed];
        }) ?? null,
      readTimeoutMs: c.REDIS_READ_TIMEOUT_MS,
      pingTimeoutMs: c.REDIS_PING_TIMEOUT_MS,
    },
    kafka: {
      brokers: c.KAFKA_BROKERS,
      clientId: c.KAFKA_CLIENT_ID,
      topicPrefix: c.KAFKA_TOPIC_PREFIX,
      newTopics: {
        partitions: c.KAFKA_TOPIC_PARTITIONS,
        replicationFactor: c.KAFKA_TOPIC_REPLICATION_FACTOR ?? null,
        deadLetterRetentionDays: c.KAFKA_DEAD_LETTER_RETENTION_DAYS,
      },
      ssl: c.KAFKA_SSL ? { caFile: c.KAFKA_SSL_CA_FILE ?? null } : null,
      sasl:
        c.KAFKA_SASL_MECHANISM === 'none'
          ? null
          : {
              mechanism: c.KAFKA_SASL_MECHANISM,
              username: c.KAFKA_SASL_USERNAME ?? '',
              password: c.KAFKA_SASL_PASSWORD ?? '',
            },
    },
    healthTimeoutMs: c.HEALTH_TIMEOUT_MS,
    shutdownTimeoutMs: c.SHUTDOWN_TIMEOUT_MS,
    ingest: {
      eventsGroupId: c.INGEST_EVENTS_GROUP_ID,
      itemsGroupId: c.INGEST_ITEMS_GROUP_ID,
      servedGroupId: c.INGEST_SERVED_GROUP_ID,
      maxValueBytes: c.INGEST_MAX_VALUE_BYTES,
      maxClockSkewMs: c.INGEST_MAX_CLOCK_SKEW_MS,
      batchSize: c.INGEST_BATCH_SIZE,
      partitionsConcurrency: c.INGEST_PARTITIONS_CONCURRENCY,
      fetchMaxBytesPerPartition: c.INGEST_FETCH_MAX_BYTES_PER_PARTITION,
      retryInitialMs: c.INGEST_RETRY_INITIAL_MS,
      retryMaxMs: c.INGEST_RETRY_MAX_MS,
      sessionTimeoutMs: c.INGEST_SESSION_TIMEOUT_MS,
    },
    online: {
      recentCap: c.ONLINE_RECENT_CAP,
      popularityHalfLifeMs: Math.round(c.ONLINE_POPULARITY_HALF_LIFE_HOURS * 3_600_000),
      catchUpIntervalMs: c.ONLINE_CATCH_UP_INTERVAL_MS,
    },
    modelLifecycle: {
      trainCron: c.TRAIN_CRON === 'off' ? null : c.TRAIN_CRON,
      trainMinNewEvents: c.TRAIN_MIN_NEW_EVENTS,
      promotionTolerance: c.TRAIN_PROMOTION_TOLERANCE,
      pollIntervalMs: c.MODEL_POLL_INTERVAL_MS,
      queuePollMs: c.TRAIN_QUEUE_POLL_MS,
      embeddingWaitMs: c.TRAIN_EMBEDDING_WAIT_MS,
    },
    training: {
      backend: c.TRAIN_BACKEND,
      epochs: c.TRAIN_EPOCHS,
      batchSize: c.TRAIN_BATCH_SIZE,
      learningRate: c.TRAIN_LEARNING_RATE,
      validationFraction: c.TRAIN_VALIDATION_FRACTION,
      replayRatio: c.TRAIN_REPLAY_RATIO,
      maxEvents: c.TRAIN_MAX_EVENTS,
      windowDays: c.TRAIN_WINDOW_DAYS,
      seed: c.TRAIN_SEED,
      shownDepth: c.TRAIN_SHOWN_DEPTH,
      combiner: c.TRAIN_COMBINER,
      combinerMinSlates: c.TRAIN_COMBINER_MIN_SLATES,
      tokenAttention: c.TRAIN_TOKEN_ATTENTION,
      encoderTopLayers: c.TRAIN_ENCODER_TOP_LAYERS,
      encoderLearningRate: c.TRAIN_ENCODER_LEARNING_RATE,
    },
    embedding: {
      model: c.EMBEDDING_MODEL,
      modelDir: c.EMBEDDING_MODEL_DIR,
      quantized: c.EMBEDDING_QUANTIZED,
      allowRemote: c.EMBEDDING_ALLOW_REMOTE,
      threads: c.EMBEDDING_THREADS,
      batchSize: c.EMBEDDING_BATCH_SIZE,
      workerBatch: c.EMBEDDING_WORKER_BATCH,
      pollIntervalMs: c.EMBEDDING_POLL_INTERVAL_MS,
      onDemandMaxBatch: c.EMBEDDING_ONDEMAND_MAX_BATCH,
      onDemandMaxWaitMs: c.EMBEDDING_ONDEMAND_MAX_WAIT_MS,
      onDemandMaxQueue: c.EMBEDDING_ONDEMAND_MAX_QUEUE,
    },
    ranking: {
      maxCandidates: c.RANK_MAX_CANDIDATES,
      timeoutMs: c.RANK_TIMEOUT_MS,
      historyLength: c.RANK_HISTORY_LENGTH,
      userVectorTtlSeconds: c.RANK_USER_VECTOR_TTL_SECONDS,
      userVectorLocalCapacity: c.RANK_USER_VECTOR_LOCAL_CAPACITY,
      staleUserWaitMs: c.RANK_STALE_USER_WAIT_MS,
      staleRebuildsMax: c.RANK_STALE_REBUILDS_MAX,
      recommendMax: c.RANK_RECOMMEND_MAX,
      recommendPool: c.RANK_RECOMMEND_POOL,
      profileRefreshMs: c.RANK_PROFILE_REFRESH_MS,
      catalogRefreshMs: c.RANK_CATALOG_REFRESH_MS,
      catalogPageRows: c.RANK_CATALOG_PAGE_ROWS,
      popularitySyncMs: c.RANK_POPULARITY_SYNC_MS,
    },
    retrieval: {
      annMinItems: c.RECOMMEND_ANN_MIN_ITEMS,
      annCandidates: c.RECOMMEND_ANN_CANDIDATES,
      annMaxDelta: c.RECOMMEND_ANN_MAX_DELTA,
      m: c.RECOMMEND_ANN_M,
      efConstruction: c.RECOMMEND_ANN_EF_CONSTRUCTION,
      efSearch: c.RECOMMEND_ANN_EF_SEARCH,
      store: c.RECOMMEND_ANN_STORE,
      prebuild: c.RECOMMEND_ANN_PREBUILD,
      storedVersions: c.RECOMMEND_ANN_STORED_VERSIONS,
      adopt: c.RECOMMEND_ANN_ADOPT,
      adoptRecallLoss: c.RECOMMEND_ANN_ADOPT_RECALL_LOSS,
      adoptMaxDriftDegrees: c.RECOMMEND_ANN_ADOPT_MAX_DRIFT_DEGREES,
      scratchDir: c.RECOMMEND_ANN_SCRATCH_DIR,
    },
    servedLog: {
      enabled: c.SERVED_LOG_ENABLED,
      depth: c.SERVED_LOG_DEPTH,
      bufferSlates: c.SERVED_LOG_BUFFER,
      batchSlates: c.SERVED_LOG_BATCH,
      flushMs: c.SERVED_LOG_FLUSH_MS,
      retentionDays: c.SERVED_LOG_RETENTION_DAYS,
    },
    events: {
      retentionDays: c.EVENTS_RETENTION_DAYS,
      partitionsAheadDays: c.EVENTS_PARTITIONS_AHEAD_DAYS,
    },
    experiments: {
      refreshMs: c.EXPERIMENT_REFRESH_MS,
      judgeIntervalMs: c.EXPERIMENT_JUDGE_INTERVAL_MS,
      versionWindowHours: c.EXPERIMENT_VERSION_WINDOW_HOURS,
      canaryMinImpressions: c.CANARY_MIN_IMPRESSIONS,
      attributionDelayMs: c.EXPERIMENT_ATTRIBUTION_DELAY_MS,
    },
    graphql: {
      maxComplexity: c.GRAPHQL_MAX_COMPLEXITY,
      maxAliases: c.GRAPHQL_MAX_ALIASES,
      maxDocumentBytes: c.GRAPHQL_MAX_DOCUMENT_BYTES,
      maxListLength: c.GRAPHQL_MAX_LIST_LENGTH,
      fastPath: c.GRAPHQL_FAST_PATH,
    },
    auth: {
      mode: c.AUTH_MODE,
      rateLimitPerSecond: {
        read: c.AUTH_RATE_LIMIT_READ_PER_SECOND,
        ops: c.AUTH_RATE_LIMIT_OPS_PER_SECOND,
      },
    },
  };
}
