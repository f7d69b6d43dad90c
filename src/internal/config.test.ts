import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from './config.ts';

const masterKey = 'ab'.repeat(32);

/** The error loadConfig throws for `env`; fails the test when it accepts it. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error;
  }
  assert.fail(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('configuration: defaults', () => {
  it('starts a development gateway on 127.0.0.1:8080 with embedded storage in ./data when nothing is set', () => {
    const config = loadConfig({});
    assert.equal(config.env, 'development');
    assert.equal(config.port, 8080);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.databaseUrl, undefined);
    assert.equal(config.dataDir, path.resolve('data'));
    assert.equal(config.masterKeyHex, undefined);
    assert.equal(config.adminToken, undefined);
    assert.equal(config.logLevel, 'info');
  });

  it('has documented limits: 1200 requests a minute, a 64 KiB body, a pool of 10, 48 h idempotency, a 50 bps quote fee', () => {
    const config = loadConfig({});
    assert.equal(config.rateLimitPerMinute, 1200);
    assert.equal(config.bodyLimitBytes, 64 * 1024);
    assert.equal(config.dbPoolSize, 10);
    assert.equal(config.idempotencyTtlHours, 48);
    assert.equal(config.quoteFeeBps, 50);
    assert.deepEqual(config.rates, {});
  });

  it('treats an empty variable as unset, as `VAR= command` does in a shell', () => {
    const config = loadConfig({ PORT: '', HOST: '', PAYCRYPT_MASTER_KEY: '', DATABASE_URL: '' });
    assert.equal(config.port, 8080);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.masterKeyHex, undefined);
    assert.equal(config.databaseUrl, undefined);
  });

  it('reads every variable it is given', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      PORT: '0',
      HOST: '0.0.0.0',
      DATABASE_URL: 'postgresql://paycrypt:pw@db.internal:5432/paycrypt',
      PAYCRYPT_DATA_DIR: '/var/lib/paycrypt',
      PAYCRYPT_MASTER_KEY: masterKey,
      PAYCRYPT_ADMIN_TOKEN: 'an-admin-token-of-24-chars',
      PAYCRYPT_LOG_LEVEL: 'warn',
      PAYCRYPT_DB_POOL_SIZE: '25',
      PAYCRYPT_BODY_LIMIT_BYTES: '1024',
      PAYCRYPT_RATE_LIMIT_PER_MINUTE: '60',
      PAYCRYPT_IDEMPOTENCY_TTL_HOURS: '24',
      PAYCRYPT_QUOTE_FEE_BPS: '0',
      PAYCRYPT_RATES: '{"BTC":"65000","EUR":"1.08"}',
    });
    const { env, port, host, databaseUrl, dataDir, masterKeyHex, adminToken, logLevel, dbPoolSize, bodyLimitBytes, rateLimitPerMinute, idempotencyTtlHours, quoteFeeBps, rates } = config;
    const read = { env, port, host, databaseUrl, dataDir, masterKeyHex, adminToken, logLevel, dbPoolSize, bodyLimitBytes, rateLimitPerMinute, idempotencyTtlHours, quoteFeeBps, rates };
    assert.deepEqual(read, {
      env: 'production',
      port: 0,
      host: '0.0.0.0',
      databaseUrl: 'postgresql://paycrypt:pw@db.internal:5432/paycrypt',
      dataDir: '/var/lib/paycrypt',
      masterKeyHex: masterKey,
      adminToken: 'an-admin-token-of-24-chars',
      logLevel: 'warn',
      dbPoolSize: 25,
      bodyLimitBytes: 1024,
      rateLimitPerMinute: 60,
      idempotencyTtlHours: 24,
      quoteFeeBps: 0,
      rates: { BTC: '65000', EUR: '1.08' },
    });
  });
});

describe('configuration: invalid values name their variable', () => {
  const invalid: Array<[variable: string, value: string, expected: RegExp]> = [
    ['NODE_ENV', 'staging', /development.*production.*test/],
    ['PORT', 'abc', /whole number from 0 to 65535/],
    ['PORT', '65536', /whole number from 0 to 65535/],
    ['PORT', '-1', /whole number from 0 to 65535/],
    ['PORT', '80.5', /whole number from 0 to 65535/],
    ['PORT', '99999999999999999999', /whole number from 0 to 65535/],
    ['DATABASE_URL', 'mysql://localhost/paycrypt', /postgres:\/\//],
    ['PAYCRYPT_MASTER_KEY', 'abcd', /64 hexadecimal characters/],
    ['PAYCRYPT_MASTER_KEY', 'g'.repeat(64), /64 hexadecimal characters/],
    ['PAYCRYPT_ADMIN_TOKEN', 'short', /at least 24 characters/],
    ['PAYCRYPT_LOG_LEVEL', 'verbose', /debug/],
    ['PAYCRYPT_DB_POOL_SIZE', '0', /whole number from 1 to 500/],
    ['PAYCRYPT_BODY_LIMIT_BYTES', '100', /whole number from 1024 to 10485760/],
    ['PAYCRYPT_RATE_LIMIT_PER_MINUTE', '0', /whole number from 1 to 10000000/],
    ['PAYCRYPT_IDEMPOTENCY_TTL_HOURS', '1', /whole number from 24 to 2160/],
    ['PAYCRYPT_QUOTE_FEE_BPS', '10000', /whole number from 0 to 9999/],
    ['PAYCRYPT_RATES', 'BTC=65000', /JSON object/],
  ];
  for (const [variable, value, expected] of invalid) {
    it(`refuses ${variable}=${value}`, () => {
      const error = configError({ [variable]: value });
      const lines = error.message.split('\n').slice(1);
      assert.equal(lines.length, 1, `one line for one bad variable:\n${error.message}`);
      assert.ok(lines[0]!.trim().startsWith(`${variable}:`), `the line names ${variable}:\n${error.message}`);
      assert.match(lines[0]!, expected);
    });
  }

  it('lists every bad variable at once', () => {
    const error = configError({ PORT: 'http', PAYCRYPT_LOG_LEVEL: 'loud', PAYCRYPT_DB_POOL_SIZE: '9999' });
    assert.match(error.message, /^Invalid configuration:/);
    for (const variable of ['PORT', 'PAYCRYPT_LOG_LEVEL', 'PAYCRYPT_DB_POOL_SIZE']) assert.match(error.message, new RegExp(`^  ${variable}:`, 'm'));
  });

  it('shows the rejected value of an ordinary setting', () => {
    assert.match(configError({ PORT: 'eighty' }).message, /got "eighty"/);
  });
});

describe('configuration: secrets', () => {
  it('never echoes a rejected master key, admin token or database URL', () => {
    const badKey = `${'f'.repeat(63)}x`;
    const badToken = 'hunter2-too-short';
    const badUrl = 'mysql://admin:s3cr3t-passw0rd@db.internal/paycrypt';
    const error = configError({ PAYCRYPT_MASTER_KEY: badKey, PAYCRYPT_ADMIN_TOKEN: badToken, DATABASE_URL: badUrl });
    for (const variable of ['PAYCRYPT_MASTER_KEY', 'PAYCRYPT_ADMIN_TOKEN', 'DATABASE_URL']) assert.match(error.message, new RegExp(`^  ${variable}:`, 'm'));
    assert.ok(!error.message.includes(badKey), error.message);
    assert.ok(!error.message.includes(badToken), error.message);
    assert.ok(!error.message.includes('s3cr3t-passw0rd'), error.message);
  });

  it('does not echo secrets given alongside another bad setting', () => {
    const error = configError({ PORT: 'x', PAYCRYPT_MASTER_KEY: masterKey, PAYCRYPT_ADMIN_TOKEN: 'a-valid-admin-token-0123456789' });
    assert.ok(!error.message.includes(masterKey));
    assert.ok(!error.message.includes('a-valid-admin-token-0123456789'));
  });

  it('refuses production without PAYCRYPT_MASTER_KEY, saying how to make one', () => {
    const error = configError({ NODE_ENV: 'production' });
    assert.match(error.message, /PAYCRYPT_MASTER_KEY/);
    assert.match(error.message, /NODE_ENV=production/);
    assert.match(error.message, /openssl rand -hex 32/);
  });

  it('starts production with a master key, and development or test without one', () => {
    assert.equal(loadConfig({ NODE_ENV: 'production', PAYCRYPT_MASTER_KEY: masterKey }).masterKeyHex, masterKey);
    assert.equal(loadConfig({ NODE_ENV: 'development' }).masterKeyHex, undefined);
    assert.equal(loadConfig({ NODE_ENV: 'test' }).masterKeyHex, undefined);
  });
});

describe('configuration: PAYCRYPT_RATES', () => {
  it('accepts a JSON object of upper-case codes to positive decimal strings, kept as exact text', () => {
    const config = loadConfig({ PAYCRYPT_RATES: '{"BTC":"65000.12345678","EUR":"1.08","USDT":"0.999"}' });
    assert.deepEqual(config.rates, { BTC: '65000.12345678', EUR: '1.08', USDT: '0.999' });
  });

  const invalid: Array<[what: string, value: string, expected: RegExp]> = [
    ['text that is not JSON', '{BTC: 65000}', /PAYCRYPT_RATES: expected a JSON object/],
    ['a JSON array', '["BTC"]', /PAYCRYPT_RATES: .*expected record/],
    ['JSON null', 'null', /PAYCRYPT_RATES: .*expected record/],
    ['a rate given as a JSON number', '{"BTC":65000}', /PAYCRYPT_RATES, entry "BTC": .*expected string/],
    ['a negative rate', '{"EUR":"-1.08"}', /PAYCRYPT_RATES, entry "EUR": expected a positive decimal number/],
    ['a zero rate', '{"EUR":"0"}', /PAYCRYPT_RATES, entry "EUR": expected a positive decimal number/],
    ['a rate that is not a number', '{"EUR":"one"}', /PAYCRYPT_RATES, entry "EUR": expected a positive decimal number/],
    ['a lower-case currency code', '{"btc":"65000"}', /PAYCRYPT_RATES, entry "btc": expected upper-case currency codes/],
  ];
  for (const [what, value, expected] of invalid) {
    it(`refuses ${what}`, () => {
      assert.match(configError({ PAYCRYPT_RATES: value }).message, expected);
    });
  }
});
