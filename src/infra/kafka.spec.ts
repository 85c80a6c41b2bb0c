import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../config/config';
import { brokerConnection } from './kafka';

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
