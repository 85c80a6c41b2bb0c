import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { configSchema } from './config';
import { CONFIG_DOCS } from './config-docs';
import { describeSchema, renderConfigDocs } from './render-config-docs';

const DOCS_FILE = path.join(__dirname, '..', '..', 'docs', 'configuration.md');

describe('configuration reference', () => {
  it('documents exactly the variables of the schema', () => {
    expect(Object.keys(CONFIG_DOCS).sort()).toEqual(Object.keys(configSchema.shape).sort());
    for (const [name, doc] of Object.entries(CONFIG_DOCS)) {
      expect({ name, description: doc.description.trim().length > 0 }).toEqual({
        name,
        description: true,
      });
    }
  });

  it('docs/configuration.md is what npm run docs:config writes', () => {
    const written = existsSync(DOCS_FILE) ? readFileSync(DOCS_FILE, 'utf8') : '';
    if (written !== renderConfigDocs()) {
      throw new Error('docs/configuration.md is stale: run npm run docs:config');
    }
  });

  it('reads type, bounds and default from the schema', () => {
    const shape = configSchema.shape;
    expect(describeSchema(shape.PORT)).toEqual({
      type: 'integer, 0 to 65535',
      defaultValue: '3000',
    });
    expect(describeSchema(shape.OPS_PORT)).toEqual({
      type: 'integer, 0 to 65535',
      defaultValue: undefined,
    });
    expect(describeSchema(shape.TRAIN_MIN_NEW_EVENTS).type).toBe('integer, at least 0');
    expect(describeSchema(shape.TRAIN_LEARNING_RATE)).toEqual({
      type: 'number, above 0, at most 1',
      defaultValue: '0.003',
    });
    expect(describeSchema(shape.ROLE)).toEqual({
      type: 'one of `api`, `ingest`, `train`, `all`',
      defaultValue: 'all',
    });
    // Defaults and enums behind transforms and refinements.
    expect(describeSchema(shape.EMBEDDING_QUANTIZED)).toEqual({
      type: 'one of `true`, `false`, `1`, `0`',
      defaultValue: 'false',
    });
    expect(describeSchema(shape.TRAIN_CRON)).toEqual({ type: 'string', defaultValue: '0 * * * *' });
    expect(describeSchema(shape.DATABASE_URL).type).toBe('URL');
    expect(describeSchema(shape.KAFKA_TOPIC_PREFIX)).toEqual({ type: 'string', defaultValue: '' });
    expect(describeSchema(shape.KAFKA_CLIENT_ID).type).toBe('non-empty string');
  });

  it('refuses a schema type it cannot describe rather than guessing', () => {
    expect(() => describeSchema(z.array(z.string()))).toThrow(/ZodArray is not rendered yet/);
  });
});
