// SVG from vega-lite specs: compiled to vega and rendered headless by vega's View.toSVG() (no
// browser, no canvas). The built CLI loads vega as one script with a V8 code cache (vega.cjs, see
// util/code-cache.ts). When the report has other heavy work meanwhile (a timeline from trace text),
// it draws on a worker thread (svg-worker.ts), so the two overlap; otherwise in the calling thread,
// which saves a thread's start. Run from the sources (vitest) there is no built worker or vega.cjs:
// it draws in the calling thread with vega from node_modules. Every way goes through drawSvg. Each SVG
// names the spec it was drawn from (its sha256, vega's versions included), so a report made again
// takes the plots it already has for specs that did not change.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { TopLevelSpec } from 'vega-lite';
import { errorMessage } from '../errors.js';
import { cacheDir } from '../util/cache-dir.js';
import { type CachedScript, requireWithCodeCache } from '../util/code-cache.js';
import { packagePath } from '../util/package-dir.js';

/** Whether this module runs built (dist/) rather than from the sources. */
const BUILT = import.meta.url.endsWith('.js');

const CONFIG = {
  font: 'DejaVu Sans, Helvetica, Arial, sans-serif',
  background: 'white',
  axis: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 13, anchor: 'start' as const },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
};

/** What drawing takes of vega and vega-lite (vega-entry.ts is the same list, for the worker's bundle). */
export type Vega = typeof import('./vega-entry.js');

/** vega as the built CLI loads it, in whichever thread draws. */
export function loadBuiltVega(): CachedScript<Vega> {
  return requireWithCodeCache<Vega>(packagePath('dist', 'report', 'vega.cjs'), cacheDir());
}

/**
 * vega and vega-lite for drawing in this thread, loaded the first time a plot is drawn: report
 * --no-write, bundle and compare never need them. From the sources both resolve to CommonJS builds,
 * whose module.exports is the default export: vite's loader and node's agree on that, not on named
 * exports.
 */
let here: Promise<Pick<CachedScript<Vega>, 'exports' | 'save'>> | undefined;
const vegaHere = () => {
  const commonJs = <T extends object>(m: T): T => (m as T & { default: T }).default;
  here ??= BUILT
    ? Promise.resolve().then(loadBuiltVega)
    : Promise.all([import('vega'), import('vega-lite')]).then(([vg, vl]) => ({ exports: { parse: commonJs(vg).parse, View: commonJs(vg).View, compile: commonJs(vl).compile }, save: () => undefined }));
  return here;
};

/** One spec drawn in this thread. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  return drawSvg((await vegaHere()).exports, spec);
}

/** One spec drawn with the vega given. */
export async function drawSvg({ compile, parse, View }: Vega, spec: TopLevelSpec): Promise<string> {
  const vg = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new View(parse(vg), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface SvgRenderer {
  render(spec: TopLevelSpec): Promise<string>;
  /** Stops the worker, if there is one; renders still pending are refused. */
  close(): Promise<void>;
}

/** What the worker answers for the spec it was sent as `id`. */
export type SvgAnswer = { id: number; svg: string } | { id: number; error: string };

/**
 * A renderer for a batch of plots. A spec drawn before, by the same vega and vega-lite, is not drawn
 * again: each SVG carries its drawing's key (a comment after the opening tag), and an SVG in
 * `drawnBefore` with the key a spec asks for is the answer. `kvmlab report` passes the plots already
 * in the results directory, so reporting a run again redraws only what changed.
 */
export function svgRenderer(overlap: boolean, drawnBefore: readonly string[] = []): SvgRenderer {
  const reuse = new Map<string, string>();
  for (const svg of drawnBefore) {
    const key = STAMPED.exec(svg)?.[1];
    if (key) reuse.set(key, svg);
  }
  const draw = drawer(overlap);
  return {
    render(spec) {
      const key = drawingKey(spec);
      const before = reuse.get(key);
      return before !== undefined ? Promise.resolve(before) : draw.render(spec).then((svg) => svg.replace(/^<svg[^>]*>/, (tag) => `${tag}${STAMP}${key} -->`));
    },
    close: () => draw.close(),
  };
}

/** The comment after an SVG's opening tag that names its drawing's key. */
const STAMP = '<!-- kvmlab: drawn from spec sha256:';
const STAMPED = new RegExp(`^<svg[^>]*>${STAMP}([0-9a-f]{64}) -->`);

const resolveHere = createRequire(import.meta.url);
let libraries: string | undefined;

/** What a drawing is made of: the spec, kvmlab's config for every plot, and the versions of vega and vega-lite. */
function drawingKey(spec: TopLevelSpec): string {
  libraries ??= ['vega', 'vega-lite'].map((name) => `${name} ${(resolveHere(`${name}/package.json`) as { version: string }).version}`).join(', ');
  return createHash('sha256').update(JSON.stringify({ libraries, config: CONFIG, spec })).digest('hex');
}

/**
 * Draws each spec asked for. With `overlap` (the caller has heavy work of its own meanwhile) and
 * kvmlab built, on a thread of its own, started by the first spec, which loads vega at once; else in
 * this thread, whose code cache is written once the batch is drawn (close), if there was none.
 */
function drawer(overlap: boolean): SvgRenderer {
  if (!overlap || !BUILT) {
    let drew = false;
    return {
      render(spec) {
        drew = true;
        return renderSvg(spec);
      },
      close: async () => {
        if (drew) (await vegaHere()).save();
      },
    };
  }
  const pending = new Map<number, { resolve: (svg: string) => void; reject: (e: Error) => void }>();
  let next = 0;
  let worker: Worker | undefined;
  const refuse = (e: Error) => {
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  const start = () => {
    const w = new Worker(packagePath('dist', 'report', 'svg-worker.js'));
    // The worker keeps the process alive only while a render is pending.
    w.unref();
    w.on('message', (a: SvgAnswer) => {
      const p = pending.get(a.id);
      pending.delete(a.id);
      if (!pending.size) w.unref();
      if ('svg' in a) p?.resolve(a.svg);
      else p?.reject(new Error(a.error));
    });
    w.on('error', (e) => refuse(new Error(`the plotting thread failed: ${errorMessage(e)}`)));
    w.on('exit', (code) => refuse(new Error(`the plotting thread exited (status ${code})`)));
    return w;
  };
  return {
    render(spec) {
      return new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        worker ??= start();
        worker.ref();
        worker.postMessage({ id, spec });
      });
    },
    close: async () => {
      await worker?.terminate();
    },
  };
}
