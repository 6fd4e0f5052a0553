// The layout tells the architecture: data moves down the flow, so a room imports only from rooms that
// act earlier (and from the neutral floor), never from a later one, and no module imports itself back
// through others. Read from the import statements of src/ as text.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = resolve(new URL('../../src', import.meta.url).pathname);

/**
 * Rooms in flow order: each may import from itself and from every room before it. The floor
 * (model/, formats/, util/, errors) imports nothing above it; experiment/ (the experiment language:
 * its schema and the types it defines) is the first room of the flow, and results (what a run's
 * files hold) is written in its words.
 */
const ROOMS: [string, RegExp, number][] = [
  ['floor', /^(errors\.ts|util\/|model\/|formats\/)/, 0],
  ['experiment', /^experiment\//, 0.5],
  ['plan', /^plan\//, 1],
  ['results', /^results\//, 1],
  ['host', /^host\//, 2],
  ['backend seam', /^backend\/[^/]+\.ts$/, 3],
  ['backend/qemu', /^backend\/qemu\//, 4],
  ['backend/mock', /^backend\/mock\//, 4],
  ['targets', /^targets\//, 6],
  ['collect', /^collect\//, 7],
  ['run', /^run\//, 8],
  ['report', /^report\//, 9],
  ['commands', /^(commands\/|cli\.ts$)/, 10],
];
/** Rooms of one rank that must not see each other: the real backend and the simulated one. */
const APART = [['backend/qemu', 'backend/mock']];
/** The one place that chooses between the backends. */
const SELECTOR = 'backend/select.ts';

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => relative(SRC, resolve(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
}

function room(path: string): [string, RegExp, number] {
  const r = ROOMS.find(([, re]) => re.test(path));
  if (!r) throw new Error(`${path} is in no room: add it to ROOMS`);
  return r;
}

const graph = new Map(files(SRC).map((f) => [relative(SRC, f), imports(f)]));

describe('src/ layout', () => {
  it('imports only from rooms that act earlier in the flow (or the floor)', () => {
    const upward: string[] = [];
    for (const [file, deps] of graph) {
      for (const dep of deps) {
        if (file === SELECTOR && /^backend\/(qemu|mock)\//.test(dep)) continue;
        const [[a, , from], [b, , to]] = [room(file), room(dep)];
        if (to > from || APART.some((pair) => pair.includes(a) && pair.includes(b) && a !== b)) upward.push(`${file} (${a}) imports ${dep} (${b})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('has no import cycles', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const walk = (f: string, path: string[]) => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const d of graph.get(f) ?? []) walk(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of graph.keys()) walk(f, []);
    expect(cycles).toEqual([]);
  });
});
