import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import '../testing/harness.ts';
import { parseTimestamptz, TIMESTAMPTZ_OID } from './timestamps.ts';

const postgresUrl = process.env.DATABASE_URL;

describe('Reading timestamptz as PostgreSQL prints it', () => {
  it('reads the ISO form to the millisecond, whatever the offset', () => {
    const cases: Array<[string, string]> = [
      ['2026-12-07 01:30:10+00', '2026-12-07T01:30:10.000Z'],
      ['2026-12-07 01:30:10.5+00', '2026-12-07T01:30:10.500Z'],
      ['2026-12-07 01:30:10.123456+00', '2026-12-07T01:30:10.123Z'],
      ['2026-12-07 01:30:10.999999+00', '2026-12-07T01:30:10.999Z'],
      ['2026-12-07 07:00:10.12+05:30', '2026-12-07T01:30:10.120Z'],
      ['2026-12-06 22:00:10-03:30', '2026-12-07T01:30:10.000Z'],
      ['2026-12-07 03:30:10+02', '2026-12-07T01:30:10.000Z'],
      ['1900-01-01 00:00:00+00:19:32', '1899-12-31T23:40:28.000Z'],
      ['0100-03-01 00:00:00+00', '0100-03-01T00:00:00.000Z'],
      ['9999-12-31 23:59:59.999+00', '9999-12-31T23:59:59.999Z'],
    ];
    for (const [text, iso] of cases) assert.equal((parseTimestamptz(text) as Date).toISOString(), iso, text);
  });

  it("leaves what is not the ISO form to the pg driver's parser", () => {
    assert.equal(parseTimestamptz('infinity'), Infinity);
    assert.equal(parseTimestamptz('-infinity'), -Infinity);
    assert.equal((parseTimestamptz('0044-03-15 12:00:00+00 BC') as Date).getUTCFullYear(), -43);
    assert.equal((parseTimestamptz('0099-01-01 00:00:00+00') as Date).toISOString(), '0099-01-01T00:00:00.000Z');
    assert.equal((parseTimestamptz('12026-01-01 00:00:00+00') as Date).getUTCFullYear(), 12026);
  });

  describe('against the server', { skip: postgresUrl ? false : 'runs with DATABASE_URL set' }, () => {
    it("gives the instant PostgreSQL stored, as the pg driver's parser does, in every time zone it prints", async () => {
      const driver = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => Date;
      const client = new pg.Client({ connectionString: postgresUrl, types: { getTypeParser: () => (text: string) => text } as unknown as typeof pg.types });
      await client.connect();
      try {
        for (const zone of ['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Europe/Amsterdam', 'Pacific/Chatham', 'Asia/Kathmandu']) {
          await client.query(`set time zone '${zone}'`);
          const { rows } = await client.query<{ text: string; epoch_ms: string }>(`
            select ts::text as text, floor(extract(epoch from ts) * 1000)::bigint::text as epoch_ms
            from (select timestamptz '1900-01-01 00:00:00+00' + make_interval(secs => n * 123456.789123 + (n % 7) * 0.000029) as ts
                  from generate_series(0, 20000) as n) as sample
          `);
          for (const row of rows) {
            const parsed = (parseTimestamptz(row.text) as Date).getTime();
            assert.equal(parsed, Number(row.epoch_ms), `${zone}: ${row.text}`);
            assert.equal(parsed, driver(row.text).getTime(), `${zone}: ${row.text}`);
          }
        }
      } finally {
        await client.end();
      }
    });
  });
});
