// What the plotting thread needs of vega and vega-lite, bundled by `npm run build` into one CommonJS
// script, dist/report/vega.cjs, which svg-worker.ts runs with a V8 code cache.
export { compile } from 'vega-lite';
export { parse, View } from 'vega';
