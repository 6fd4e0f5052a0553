// The thread behind svgRenderer (svg.ts): it loads vega as it starts (dist/report/vega.cjs, with a
// V8 code cache under $KVMLAB_CACHE/code), then draws each spec it is sent and answers with the SVG
// or the error's message. When it first runs out of work and there was no usable cache, it writes
// one before the last answer (the caller may stop the thread once it has every answer), so the cache
// holds the functions drawing compiled as well.
import { parentPort } from 'node:worker_threads';
import type { TopLevelSpec } from 'vega-lite';
import { errorMessage } from '../errors.js';
import type { CachedScript } from '../util/code-cache.js';
import { drawSvg, loadBuiltVega, type SvgAnswer, type Vega } from './svg.js';

const port = parentPort!;
let vega: CachedScript<Vega> | Error;
try {
  vega = loadBuiltVega();
} catch (e) {
  vega = new Error(`cannot load vega: ${errorMessage(e)}`); // answered to every render
}
let drawing = 0;
let saved = false;
port.on('message', ({ id, spec }: { id: number; spec: TopLevelSpec }) => {
  const v = vega;
  if (v instanceof Error) return port.postMessage({ id, error: v.message } satisfies SvgAnswer);
  drawing++;
  const done = (a: SvgAnswer) => {
    if (--drawing === 0 && !saved) {
      saved = true;
      v.save();
    }
    port.postMessage(a);
  };
  drawSvg(v.exports, spec).then(
    (svg) => done({ id, svg }),
    (e) => done({ id, error: errorMessage(e) }),
  );
});
