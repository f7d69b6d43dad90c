import path from 'node:path';

/**
 * CPU profiles of the benchmarked child processes, on request: with
 * BENCH_PROFILE_DIR set, each child started with `profilingEnv()` writes a V8
 * CPU profile there when it exits (see bench/cpu-profile.mjs). Profile
 * timestamps are microseconds of the monotonic clock, which every process
 * shares, so the marks printed by `profileMark` pick out the samples of one
 * measured run.
 */

export function profilingEnv(): Record<string, string> {
  const dir = process.env.BENCH_PROFILE_DIR;
  if (!dir) return {};
  const preload = new URL('cpu-profile.mjs', import.meta.url).href;
  return { BENCH_PROFILE_DIR: path.resolve(dir), NODE_OPTIONS: `--import ${preload}` };
}

export function profileMark(label: string): void {
  if (process.env.BENCH_PROFILE_DIR) console.log(`profile clock at ${label}: ${process.hrtime.bigint() / 1000n} us`);
}
