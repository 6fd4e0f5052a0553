#!/usr/bin/env node
// Throughput of kvmlab's tracefs text parser (dist/formats/tracefs/; run `npm run build`
// first). Not a test: it prints numbers.
//
//   node test/bench/trace-parser.mjs [TRACEFILE] [--lines N] [--dat TRACE.DAT] [--keep] [--smoke]
//
// --smoke     20,000 synthesized lines (numbers not meant to be read), so CI keeps this script working.
//
// TRACEFILE   text of a tracefs `trace`/`trace_pipe` file. Without it, N lines (default 2,000,000)
//             are synthesized from the captured fixtures (test/fixtures/tracefs/trace-*.txt): their
//             event lines repeated in order with timestamps rising 1 µs per line, written to a
//             temporary file (removed afterwards unless --keep).
// --dat FILE  also time `trace-cmd report -i FILE` (binary → text) and our parser on that report's
//             text. Make FILE from the same buffer as TRACEFILE to compare like with like.
//
// Phases, each timed on its own:
//   stream   countTraceEvents(fs.createReadStream(TRACEFILE)): read + UTF-8 decode + split + parse
//            + count per event, constant memory. (The collector counts each file read whole, as a
//            string: it holds that text already, having written it.)
//   lines    parseTraceLine() over the file already in memory (parse cost alone; skipped > 900 MB).
//   fields   parseEventFields(body, format) for up to 1M event lines whose format is in the fixtures.
// Peak RSS is the process's maxRSS after each phase (it only grows, so the stream phase comes first).
//
// Producing a trace.dat on the kvmlab build host (kernel 6.18, trace-cmd 3.1.6) is awkward:
// - `trace-cmd record -B NAME …` segfaults (its command child gets EPERM on set_ftrace_pid) and leaves
//   the instance and two recorder processes behind; without -d it also tries to write
//   /proc/sys/kernel/ftrace_enabled.
// - `trace-cmd extract -B NAME` works but is NOT instance-private: besides the instance it truncates
//   the top-level `trace`, writes the top-level events/enable and every events/*/filter, and so
//   expands a never-used top buffer (buffer_size_kb "7 (expanded: 1408)" → "1410"). Do not run it
//   on a shared host. If you accept that, save the text before extracting (extract consumes):
//     I=/sys/kernel/tracing/instances/kvmlab-bench; mkdir $I; echo 65536 > $I/buffer_size_kb
//     echo 1 > $I/events/sched/sched_switch/enable …; echo 1 > $I/tracing_on; <workload>
//     echo 0 > $I/tracing_on; cat $I/trace > trace.txt
//     trace-cmd extract -B kvmlab-bench -o trace.dat        # also removes $I

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';

const root = new URL('../../', import.meta.url);
const dist = (m) => new URL(`dist/formats/tracefs/${m}.js`, root);
if (!fs.existsSync(dist('trace-stream'))) {
  console.error(`missing ${dist('trace-stream').pathname}: run "npm run build" first`);
  process.exit(2);
}
const { countTraceEvents, forEachLine } = await import(dist('trace-stream').href);
const { parseTraceLine } = await import(dist('trace-line').href);
const { parseEventFields } = await import(dist('event-fields').href);
const { parseEventFormat } = await import(dist('event-format').href);

// ---- arguments
const argv = process.argv.slice(2);
const synthesizing = argv[0] === '--synthesize-into';
let traceFile;
let lines = 2_000_000;
let datFile;
let keep = false;
for (let i = 0; !synthesizing && i < argv.length; i++) {
  const a = argv[i];
  if (a === '--lines') lines = Number(argv[++i]);
  else if (a === '--dat') datFile = argv[++i];
  else if (a === '--keep') keep = true;
  else if (a === '--smoke') lines = 20_000;
  else if (a === '-h' || a === '--help') {
    console.log('usage: node test/bench/trace-parser.mjs [TRACEFILE] [--lines N] [--dat TRACE.DAT] [--keep] [--smoke]');
    process.exit(0);
  } else if (a.startsWith('-')) {
    console.error(`unknown option ${a}`);
    process.exit(2);
  } else traceFile = a;
}
if (!Number.isInteger(lines) || lines <= 0) {
  console.error('--lines needs a positive integer');
  process.exit(2);
}

const mb = (bytes) => (bytes / 1e6).toFixed(1);
const rate = (n, ms) => `${((n / ms) * 1000 / 1e6).toFixed(2)} M/s`;
const peakRssMb = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);

// ---- synthesize when no file is given (in a child process, so its memory is not in our peak RSS)
if (argv[0] === '--synthesize-into') {
  synthesize(argv[1], Number(argv[2]));
  process.exit(0);
}
let tmpDir;
if (traceFile === undefined) {
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvmlab-bench-'));
  traceFile = path.join(tmpDir, 'trace.txt');
  const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, '--synthesize-into', traceFile, String(lines)], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(1);
}

function synthesize(file, count) {
  const fixtureDir = new URL('test/fixtures/tracefs/', root);
  const templates = [];
  for (const name of ['trace-sched-kvm-marker.txt', 'trace-record-tgid.txt']) {
    for (const line of fs.readFileSync(new URL(name, fixtureDir), 'utf8').split('\n')) {
      const ev = line === '' || line.startsWith('#') ? null : parseTraceLine(line);
      if (ev === null) continue;
      // Split the line around its timestamp so it can be rewritten.
      const ts = /(\s)(\d+\.\d{6}):(\s)/.exec(line);
      if (ts === null) continue;
      templates.push([line.slice(0, ts.index + 1), line.slice(ts.index + 1 + ts[2].length)]);
    }
  }
  const fd = fs.openSync(file, 'w');
  const header = fs.readFileSync(new URL('trace-sched-kvm-marker.txt', fixtureDir), 'utf8').split('\n').slice(0, 12).join('\n') + '\n';
  fs.writeSync(fd, header);
  let batch = [];
  let us = 1_000_000_000; // 1000 s, in µs
  for (let i = 0; i < count; i++, us++) {
    const [pre, post] = templates[i % templates.length];
    const sec = Math.floor(us / 1e6);
    const frac = String(us % 1e6).padStart(6, '0');
    batch.push(`${pre}${String(sec).padStart(5, ' ')}.${frac}${post}`);
    if (batch.length === 50_000) {
      fs.writeSync(fd, batch.join('\n') + '\n');
      batch = [];
    }
  }
  if (batch.length > 0) fs.writeSync(fd, batch.join('\n') + '\n');
  fs.closeSync(fd);
  console.log(`synthesized ${count} event lines from ${templates.length} fixture lines → ${file}`);
}

const size = fs.statSync(traceFile).size;
console.log(`input: ${traceFile} (${mb(size)} MB)`);
console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} ×${os.cpus().length}, kernel ${os.release()}`);

/** What the last line reports, as JSON. */
const result = { lines: 0, stream_lines_per_s: null, parse_lines_per_s: null, peak_rss_mb: null };

// ---- phase 1: streaming count
{
  const t0 = performance.now();
  const counts = await countTraceEvents(fs.createReadStream(traceFile, { highWaterMark: 1 << 20 }));
  const ms = performance.now() - t0;
  const top = [...counts.byEvent.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${k}=${v}`).join(' ');
  console.log(
    `stream: ${counts.lines} lines, ${counts.events} events in ${(ms / 1000).toFixed(2)} s → ` +
      `${rate(counts.lines, ms)} lines, ${rate(counts.events, ms)} events, ${(size / 1e6 / (ms / 1000)).toFixed(0)} MB/s; ` +
      `malformed ${counts.malformed}, markers ${counts.markers.length}; peak RSS ${peakRssMb()} MB`,
  );
  console.log(`        top events: ${top}`);
  Object.assign(result, { lines: counts.lines, stream_lines_per_s: Math.round((counts.lines / ms) * 1000) });
}

// ---- phase 2: parse only, text in memory
let text;
if (size < 900e6) {
  text = fs.readFileSync(traceFile, 'utf8');
  const all = [];
  forEachLine(text, (l) => all.push(l));
  let events = 0;
  const t0 = performance.now();
  for (const l of all) if (parseTraceLine(l) !== null) events++;
  const ms = performance.now() - t0;
  console.log(`lines:  parseTraceLine over ${all.length} in-memory lines in ${(ms / 1000).toFixed(2)} s → ${rate(all.length, ms)} lines (${events} events); peak RSS ${peakRssMb()} MB`);
  result.parse_lines_per_s = Math.round((all.length / ms) * 1000);
  all.length = 0;
} else {
  console.log('lines:  skipped (file > 900 MB)');
}

// ---- phase 3: event fields with formats
{
  const formatDir = new URL('test/fixtures/tracefs/format/', root);
  const formats = new Map();
  for (const f of fs.readdirSync(formatDir)) {
    const fmt = parseEventFormat(fs.readFileSync(new URL(f, formatDir), 'utf8'));
    formats.set(fmt.name, fmt);
  }
  const bodies = [];
  if (text !== undefined) {
    forEachLine(text, (l) => {
      if (bodies.length >= 1_000_000) return;
      const ev = parseTraceLine(l);
      if (ev !== null && formats.has(ev.event)) bodies.push([ev.body, formats.get(ev.event)]);
    });
  }
  if (bodies.length > 0) {
    let keys = 0;
    const t0 = performance.now();
    for (const [body, fmt] of bodies) keys += Object.keys(parseEventFields(body, fmt)).length;
    const ms = performance.now() - t0;
    console.log(`fields: parseEventFields on ${bodies.length} bodies with a format in ${(ms / 1000).toFixed(2)} s → ${rate(bodies.length, ms)} (${keys} keys)`);
  } else {
    console.log('fields: skipped (no events with a fixture format)');
  }
}
text = undefined;

// ---- trace-cmd report
const haveTraceCmd = spawnSync('trace-cmd', ['--version'], { stdio: 'ignore' }).error === undefined;
if (!haveTraceCmd) {
  console.log('trace-cmd: not installed, skipped');
} else if (datFile === undefined) {
  console.log('trace-cmd: skipped (pass --dat TRACE.DAT made from the same buffer; see the header for how)');
} else {
  const out = path.join(tmpDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'kvmlab-bench-')), 'report.txt');
  const fd = fs.openSync(out, 'w');
  const t0 = performance.now();
  const r = spawnSync('trace-cmd', ['report', '-i', datFile], { stdio: ['ignore', fd, 'ignore'] });
  const ms = performance.now() - t0;
  fs.closeSync(fd);
  if (r.status !== 0) {
    console.log(`trace-cmd report failed (status ${r.status})`);
  } else {
    const t1 = performance.now();
    const counts = await countTraceEvents(fs.createReadStream(out, { highWaterMark: 1 << 20 }));
    const ms1 = performance.now() - t1;
    console.log(`trace-cmd report -i ${datFile}: ${counts.events} events in ${(ms / 1000).toFixed(2)} s → ${rate(counts.events, ms)} events (${mb(fs.statSync(datFile).size)} MB .dat → ${mb(fs.statSync(out).size)} MB text)`);
    console.log(`stream on that report text: ${(ms1 / 1000).toFixed(2)} s → ${rate(counts.events, ms1)} events`);
  }
  if (tmpDir === undefined) fs.rmSync(path.dirname(out), { recursive: true, force: true });
}

if (tmpDir !== undefined && !keep) fs.rmSync(tmpDir, { recursive: true, force: true });
result.peak_rss_mb = Number(peakRssMb());
console.log(JSON.stringify(result));
