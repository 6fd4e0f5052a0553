// `perf stat -x,` output, with or without --per-thread: one count per event (and thread).

export interface PerfCount {
  /** TID with --per-thread; undefined for a process total. */
  tid?: number;
  comm?: string;
  event: string;
  /** undefined: not supported. */
  value: number | undefined;
  note?: string;
}

/** Parse `perf stat -x,` output (with or without --per-thread). */
export function parsePerfCsv(text: string): PerfCount[] {
  const out: PerfCount[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const f = line.split(',');
    // --per-thread puts "comm-tid" first; the count field is then the second
    let thread: { tid: number; comm: string } | undefined;
    const m = /^(.*)-(\d+)$/.exec(f[0]!);
    if (m && f.length >= 5 && !/^[\d.]+$|^<not/.test(f[0]!)) {
      thread = { comm: m[1]!, tid: Number(m[2]) };
      f.shift();
    }
    const [countText, , event] = f;
    if (countText === undefined || event === undefined || event === '') continue;
    let value: number | undefined;
    let note: string | undefined;
    if (countText === '<not counted>') {
      value = 0;
      note = 'not counted';
    } else if (countText === '<not supported>') {
      note = 'not supported';
    } else if (/^-?\d+(\.\d+)?$/.test(countText)) value = Number(countText);
    else continue;
    out.push({ ...(thread ?? {}), event, value, ...(note ? { note } : {}) });
  }
  return out;
}
