// Times the wasm build of the benchmark workload in Node:
//   node run.mjs <wasm-bindgen --target web output dir> [twin counts, default 10000,1000000]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = path.resolve(process.argv[2] || 'pkg');
const glue = await import(pathToFileURL(path.join(dir, 'twinscene_bench_wasm.js')).href);
glue.initSync({ module: readFileSync(path.join(dir, 'twinscene_bench_wasm_bg.wasm')) });

const sizes = (process.argv[3] || '10000,1000000').split(',').map(Number);
for (const twins of sizes) {
  for (const floorAverage of [false, true]) {
    const built = performance.now();
    const bench = new glue.Bench(twins, floorAverage, 10_000);
    const setupMs = performance.now() - built;
    bench.apply(); // warm-up
    let applied = 0;
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    while (performance.now() - start < 3000) {
      bench.apply();
      applied += bench.update_count();
    }
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    const name = floorAverage ? 'color_and_floor_average' : 'color';
    // Per CPU second as well: on a busy machine wall-clock rates undercount.
    console.log(
      `${name}/${twins}_twins: ${(applied / seconds / 1e6).toFixed(3)} M updates/s wall, ` +
        `${(applied / cpuSeconds / 1e6).toFixed(3)} M per CPU second (setup ${setupMs.toFixed(0)} ms)`,
    );
    bench.free();
  }
}
