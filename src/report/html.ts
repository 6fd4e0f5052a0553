// index.html: the verdict, the key metrics and the plots on one page that works offline — the SVGs
// are inline, the styles are in the page, and there are no scripts or web fonts.
import type { LoadedResults } from './load.js';
import type { Plot } from './plots.js';
import { fmtObserved, type TableData } from './table.js';
import { headline, ranOnLines, variantNotes, whereMeasured } from './summary.js';

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function table(t: TableData, cls = ''): string {
  const head = `<tr>${t.headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const body = t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

function verdictHtml(r: LoadedResults): string {
  const rows: string[] = [];
  const ranOn = ranOnLines(r.summary);
  for (const v of r.summary.variants) {
    const cls = v.status;
    const n = Math.max(1, v.expectations.length);
    const head = `<td rowspan="${n}" class="variant">${esc(v.id)}</td><td rowspan="${n}" class="verdict ${cls}">${esc(v.status.toUpperCase())}</td>`;
    if (v.expectations.length === 0) {
      rows.push(`<tr>${head}<td colspan="3">${esc(v.reason ?? '(no expectations)')}</td></tr>`);
      continue;
    }
    v.expectations.forEach((e, i) => {
      rows.push(
        `<tr>${i === 0 ? head : ''}<td>${esc(e.description)}${e.note ? `<br><small>${esc(e.note)}</small>` : ''}</td><td class="num">${esc(fmtObserved(e.observed))}</td><td class="${e.passed ? 'ok' : 'fail'}"><code>${e.passed ? 'ok' : 'FAIL'} ${esc(e.claim)}</code></td></tr>`,
      );
    });
    if (v.reason) rows.push(`<tr><td></td><td></td><td colspan="3"><small>reason: ${esc(v.reason)}</small></td></tr>`);
    for (const line of variantNotes(r.summary, v, ranOn)) rows.push(`<tr><td></td><td></td><td colspan="3"><small>${esc(line)}</small></td></tr>`);
  }
  return `<table class="verdicts">\n<thead><tr><th>variant</th><th>verdict</th><th>expectation</th><th>observed</th><th>claim</th></tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody>\n</table>`;
}

const STYLE = `
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; }
.simulated { background: #fff3cd; border: 2px solid #d39e00; padding: 0.6em 1em; font-weight: bold; margin: 1em 0; }
.simulated-tag { background: #d39e00; color: white; padding: 0.1em 0.4em; border-radius: 3px; font-size: 0.7em; vertical-align: middle; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num, .keymetrics td:nth-child(n+3) { text-align: right; font-variant-numeric: tabular-nums; }
.verdict.passed, td.ok { color: #1a7f37; } .verdict.failed, td.fail { color: #c62828; font-weight: bold; }
.verdict.error { color: #b26a00; font-weight: bold; } .verdict.skipped { color: #777; }
.plot svg { max-width: 100%; height: auto; }
.note { color: #666; font-style: italic; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.85em; }
ul.meta { padding-left: 1.2em; }
`;

export function renderHtml(r: LoadedResults, plots: readonly Plot[], keyMetrics: TableData): string {
  const s = r.summary;
  const sim = s.simulated;
  const simBanner = sim ? `<div class="simulated">SIMULATED — these results come from kvmlab's mock backend: the guest and host are a model, not hardware.</div>` : '';
  const source = s.source ? (typeof s.source === 'string' ? s.source : `${s.source.list}, ${s.source.date}: "${s.source.subject}"${s.source.url ? ` <${s.source.url}>` : ''}`) : undefined;
  const parts = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(s.experiment)}${sim ? ' (SIMULATED)' : ''} — kvmlab results</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${esc(s.experiment)}${sim ? ' <span class="simulated-tag">SIMULATED</span>' : ''}</h1>`,
    simBanner,
    `<p>${esc(s.description.trim())}</p>`,
    '<ul class="meta">',
    source ? `<li>source: ${esc(source)}</li>` : '',
    `<li>measured on: ${esc(whereMeasured(s))}</li>`,
    `<li>backend: ${esc(s.backend)}, accel: ${esc(s.accel)}${sim ? ', simulated' : ''}</li>`,
    `<li>host: ${esc(s.host.cpuModel)}, ${esc(s.host.arch)}, kernel ${esc(s.host.kernelRelease)}, ${s.host.cpus.length} CPUs</li>`,
    `<li>started ${esc(s.startedAt)}, finished ${esc(s.finishedAt)}${s.interrupted ? ' (interrupted)' : ''}</li>`,
    ...s.notices.map((n) => `<li>note: ${esc(n)}</li>`),
    '</ul>',
    `<p><strong>${esc(headline(s)).replace('\n', '</strong><br>')}</p>`,
    '<h2>Verdict</h2>',
    verdictHtml(r),
    '<h2>Key metrics</h2>',
    '<p>Per variant, each metric an expectation names and host CPU % per vCPU (mean over the measured steps), reduced to one value per repetition; median and spread over repetitions.</p>',
    keyMetrics.rows.length ? table(keyMetrics, 'keymetrics') : '<p class="note">No key metrics: the experiment names no metric in an expectation and no vcpu.cpu_pct was collected.</p>',
    '<h2>Plots</h2>',
    ...plots.map((p) =>
      p.svg
        ? `<section class="plot"><h3>${esc(p.title)}</h3>\n${p.svg.replace(/^<\?xml[^>]*>\s*/, '')}\n<p>${esc(p.caption)}</p></section>`
        : `<section class="plot"><h3>${esc(p.title)}</h3><p class="note">Not plotted: ${esc(p.note ?? '')}</p></section>`,
    ),
    '<h2>Files</h2>',
    '<ul>',
    '<li><a href="summary.md">summary.md</a> — this summary as text</li>',
    '<li><a href="timeline.json">timeline.json</a> — steps, per-vCPU CPU % and traced exits; open in ui.perfetto.dev or chrome://tracing</li>',
    '<li><a href="metrics.csv">metrics.csv</a> — every measured value</li>',
    '<li><a href="experiment.yaml">experiment.yaml</a> — the experiment as run</li>',
    '</ul>',
    '</body>',
    '</html>',
  ];
  return `${parts.filter((p) => p !== '').join('\n')}\n`;
}
