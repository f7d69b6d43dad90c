import fs from 'node:fs';
import { Session } from 'node:inspector';
import path from 'node:path';

/**
 * Preloaded into a benchmarked process (`--import ./bench/cpu-profile.mjs`)
 * when BENCH_PROFILE_DIR is set: records a V8 CPU profile from start to exit
 * and writes it there as `<pid>.cpuprofile`. (Node 20 refuses `--cpu-prof` in
 * NODE_OPTIONS, and the server processes get their flags from the benchmark.)
 *
 * @dev Plain JavaScript, so that it needs no loader of its own: with tsx
 * imported both from NODE_OPTIONS (for a TypeScript preload) and from the
 * child's own flags, the gateway never finished starting. The in-process
 * inspector session answers synchronously, which is what lets the profile be
 * written from the `exit` handler.
 */
const dir = process.env.BENCH_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 500 });
  session.post('Profiler.start');
  process.on('exit', () => {
    session.post('Profiler.stop', (error, result) => {
      if (!error) fs.writeFileSync(path.join(dir, `${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
