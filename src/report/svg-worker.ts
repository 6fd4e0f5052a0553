// The thread behind svgRenderer (svg.ts): it loads vega as it starts, then draws each spec it is
// sent, in the order sent, and answers with the SVG or the error's message.
import { parentPort } from 'node:worker_threads';
import type { TopLevelSpec } from 'vega-lite';
import { errorMessage } from '../errors.js';
import { loadVega, renderSvg, type SvgAnswer } from './svg.js';

const port = parentPort!;
const answer = (a: SvgAnswer) => port.postMessage(a);
void loadVega().catch(() => undefined); // a failure to load is answered to the first render
port.on('message', ({ id, spec }: { id: number; spec: TopLevelSpec }) => {
  renderSvg(spec).then(
    (svg) => answer({ id, svg }),
    (e) => answer({ id, error: errorMessage(e) }),
  );
});
