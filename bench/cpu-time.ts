import fs from 'node:fs';

/**
 * CPU time spent by the processes of a measured run, read from /proc (Linux):
 * how the machine's two cores were shared between the server under test,
 * PostgreSQL and the load generator. Throughput on a busy machine follows
 * CPU per request, so this says where a gap between two servers comes from.
 */

export type CpuReading = { server: number; postgres: Map<number, number>; loadGenerator: number };
export type CpuPerRequest = { server: number; postgres: number; loadGenerator: number };

const ticksPerSecond = 100;

/** CPU seconds used so far by `serverPid`, by each `postgres` process, and by this process (the load generator). */
export function readCpu(serverPid: number): CpuReading {
  const own = process.cpuUsage();
  return { server: processCpuSeconds(serverPid), postgres: postgresCpuSeconds(), loadGenerator: (own.user + own.system) / 1e6 };
}

/** CPU microseconds per request between two readings. A PostgreSQL process that started in between counts from zero, one that ended is left out. */
export function cpuPerRequest(before: CpuReading, after: CpuReading, requests: number): CpuPerRequest {
  let postgres = 0;
  for (const [pid, seconds] of after.postgres) postgres += seconds - (before.postgres.get(pid) ?? 0);
  const per = (seconds: number) => (seconds * 1e6) / requests;
  return { server: per(after.server - before.server), postgres: per(postgres), loadGenerator: per(after.loadGenerator - before.loadGenerator) };
}

export function formatCpu(cpu: CpuPerRequest, names: { server: string; loadGenerator: string } = { server: 'server', loadGenerator: 'load generator' }): string {
  const us = (value: number) => `${value.toFixed(0)} µs`;
  return `${names.server} ${us(cpu.server)}, PostgreSQL ${us(cpu.postgres)}, ${names.loadGenerator} ${us(cpu.loadGenerator)}`;
}

function processCpuSeconds(pid: number): number {
  try {
    // Note: the command name may hold spaces; the fields after its closing parenthesis are fixed (utime and stime are the 12th and 13th).
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return 0;
  }
}

function postgresCpuSeconds(): Map<number, number> {
  const seconds = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') seconds.set(Number(entry), processCpuSeconds(Number(entry)));
    } catch {
      // Note: a process may end between the listing and the read.
    }
  }
  return seconds;
}
