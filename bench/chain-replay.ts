import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { loadCursor, recordBlocks } from '../src/core/deposits/chain-ledger.ts';
import { createStorage } from '../src/storage/database.ts';
import { cpuPerRequest, readCpu } from './cpu-time.ts';

/**
 * `npm run bench:chain-replay`: replays part 3 of the chain benchmark without
 * anvil, on a database that `BENCH_KEEP_DATABASE=1 npm run bench:chain` left
 * behind (`BENCH_REPLAY_DATABASE_URL`), to compare changes to the watcher's
 * SQL and settling code side by side in minutes.
 *
 * Each block pays one of the benchmark's three sets of 5,000 payments again:
 * the set is reset to unpaid (its transfers deleted), the tables are
 * vacuumed and checkpointed, then `recordBlocks` runs as the watcher runs
 * it (matching the transfers to the watched addresses included), for a block
 * following the stored cursor. Printed per block: its wall time, and the CPU time
 * the Node process and the PostgreSQL server's processes spent (read from
 * /proc, so only with the server on this machine). No target: the chain
 * benchmark itself is the measurement of record.
 */

const url = process.env.BENCH_REPLAY_DATABASE_URL;
if (!url) throw new Error('set BENCH_REPLAY_DATABASE_URL to a database kept by BENCH_KEEP_DATABASE=1 npm run bench:chain');
const blocks = Number(process.env.BENCH_REPLAY_BLOCKS ?? 7);
const chain = 'bench-anvil';
const setSize = 5_000;

const hex = (bytes: number) => `0x${randomBytes(bytes).toString('hex')}`;

const storage = await createStorage({ databaseUrl: url, poolSize: 4 });
const db = storage.db;
try {
  console.log('block  set   recordBlocks ms   Node CPU ms   PostgreSQL CPU ms');
  for (let block = 0; block < blocks; block++) {
    const set = block % 3;
    const { rows } = await sql<{ id: number; address: string; crypto_amount: string }>`
      select id, address, crypto_amount from payments order by id offset ${set * setSize} limit ${setSize}
    `.execute(db);
    if (rows.length !== setSize) throw new Error(`expected ${setSize} payments in set ${set}, found ${rows.length}: is this a kept chain benchmark database?`);
    const ids = rows.map((row) => row.id);
    await sql`delete from chain_transfers where payment_id = any(${ids}::bigint[])`.execute(db);
    // Note: the expiry in milliseconds, as the gateway writes it. (With now()'s microseconds, every
    // replayed block's payments update used to be a change of the expiry index's column: never HOT.)
    await sql`
      update payments set status = 'pending', settlement = 'awaiting_payment', amount_paid = 0, amount_detected = 0, expires_at = date_trunc('milliseconds', now() + interval '1 day')
      where id = any(${ids}::bigint[])
    `.execute(db);
    // Note: the server may run without autovacuum; each block's reset would otherwise pile up dead rows.
    await sql`vacuum analyze payments, chain_transfers, events`.execute(db);
    await sql`checkpoint`.execute(db);
    const cursor = await loadCursor(db, chain);
    if (!cursor) throw new Error(`no cursor for chain ${chain}`);
    // Note: ten transactions of 500 transfers each, as the benchmark's batchTransfer calls make.
    const txHashes = Array.from({ length: 10 }, () => hex(32));
    const senders = rows.map(() => hex(20));

    const cpuBefore = readCpu(process.pid);
    const started = performance.now();
    const transfers = rows.map((row, index) => ({
      txHash: txHashes[Math.floor(index / 500)]!,
      logIndex: index,
      from: senders[index]!,
      to: row.address,
      asset: 'USDT',
      amount: BigInt(row.crypto_amount),
    }));
    const settled = await recordBlocks(db, { chain, blocks: [{ number: cursor.number + 1, hash: hex(32), parentHash: cursor.hash, transfers }], reorgWindow: 64 });
    const recorded = performance.now();
    // Note: CPU µs for the one block; the benchmark process is both the "server" and the load generator here.
    const cpu = cpuPerRequest(cpuBefore, readCpu(process.pid), 1);
    if (settled.length !== setSize) throw new Error(`block ${block}: ${settled.length} settled of ${setSize}`);
    const columns = [
      String(block + 1).padStart(5),
      String(set + 1).padStart(4),
      (recorded - started).toFixed(1).padStart(17),
      (cpu.server / 1000).toFixed(0).padStart(13),
      (cpu.postgres / 1000).toFixed(0).padStart(19),
    ];
    console.log(columns.join(' '));
  }
} finally {
  await storage.close();
}
