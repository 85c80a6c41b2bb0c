import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { logLevel } from 'kafkajs';
import { ConfigError, loadConfig } from '../config/config';
import { createLogger } from '../common/logger';
import { brokerConnection, kafkaLogCreator } from './kafka';

describe('Kafka connection settings', () => {
  it('connects in plain text without TLS or SASL by default', () => {
    expect(brokerConnection(loadConfig({ KAFKA_BROKERS: 'a:9092' }).kafka)).toEqual({
      brokers: ['a:9092'],
    });
  });

  it('turns on TLS with the system CAs, or with a CA file read at start, and SASL/SCRAM', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kafka-ca-'));
    const caFile = path.join(dir, 'ca.pem');
    writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n');
    const system = loadConfig({ KAFKA_SSL: 'true' }).kafka;
    expect(brokerConnection(system).ssl).toBe(true);
    const config = loadConfig({
      KAFKA_SSL: 'true',
      KAFKA_SSL_CA_FILE: caFile,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'recsys',
      KAFKA_SASL_PASSWORD: 'secret',
    }).kafka;
    expect(brokerConnection(config)).toMatchObject({
      ssl: { ca: [expect.stringContaining('BEGIN CERTIFICATE')] },
      sasl: { mechanism: 'scram-sha-512', username: 'recsys', password: 'secret' },
    });
  });

  it('names the missing variable of an incomplete setting', () => {
    expect(() => loadConfig({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u' })).toThrow(
      new ConfigError(['KAFKA_SASL_PASSWORD="": required with KAFKA_SASL_MECHANISM=plain']),
    );
    expect(() => loadConfig({ KAFKA_SSL_CA_FILE: '/ca.pem' })).toThrow(
      /KAFKA_SSL_CA_FILE=.*KAFKA_SSL=true/,
    );
    expect(() => loadConfig({ KAFKA_SASL_MECHANISM: 'kerberos' })).toThrow(/KAFKA_SASL_MECHANISM=/);
  });
});

describe("kafkajs's log lines", () => {
  const logged = (level: logLevel, message: string) => {
    const logger = createLogger('debug');
    const warn = jest.spyOn(logger, 'warn').mockImplementation(() => undefined);
    const debug = jest.spyOn(logger, 'debug').mockImplementation(() => undefined);
    kafkaLogCreator(logger)(logLevel.WARN)({
      namespace: 'Producer',
      level,
      label: 'WARN',
      log: { timestamp: '', logger: 'kafkajs', message },
    });
    return { warn: warn.mock.calls, debug: debug.mock.calls };
  };

  it('keeps warnings at warn, with their fields', () => {
    expect(logged(logLevel.WARN, 'Connection timeout')).toEqual({
      warn: [[{ timestamp: '', logger: 'kafkajs' }, 'Connection timeout']],
      debug: [],
    });
  });

  it("logs the producer's expected warning about bounded retries at debug", () => {
    expect(
      logged(
        logLevel.WARN,
        'Limiting retries for the idempotent producer may invalidate EoS guarantees',
      ),
    ).toMatchObject({
      warn: [],
      debug: [[{ logger: 'kafkajs' }, expect.stringContaining('Limiting')]],
    });
  });
});
