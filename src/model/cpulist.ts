// Linux CPU list syntax ("0-3,8,10-11"), as in /sys/devices/system/cpu/online, Cpus_allowed_list,
// isolcpus= and libvirt's cpuset attribute.


/** Highest CPU number accepted: far above any NR_CPUS, low enough that "0-4294967295" is refused. */
export const MAX_CPU_NUMBER = 65535;

/**
 * Expand a kernel CPU list into sorted, distinct CPU numbers. Accepts what the kernel prints
 * ("", "3", "0-3,8,10-11", surrounding whitespace/newline). Throws on anything else: empty parts,
 * reversed or open ranges, signs, the "a-b:n/m" stride syntax, numbers above MAX_CPU_NUMBER.
 */
export function parseCpuList(text: string): number[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  const out = new Set<number>();
  for (const part of trimmed.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) {
      throw new Error(`invalid CPU list ${JSON.stringify(text)}: part ${JSON.stringify(part)} is not "N" or "N-M"`);
    }
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`invalid CPU list ${JSON.stringify(text)}: range ${part} runs backwards`);
    if (hi > MAX_CPU_NUMBER) throw new Error(`invalid CPU list ${JSON.stringify(text)}: CPU ${hi} is above ${MAX_CPU_NUMBER}`);
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  return [...out].sort((a, b) => a - b);
}

/**
 * The canonical kernel spelling of a CPU set: ascending, duplicates dropped, every run of two or
 * more consecutive CPUs as "a-b" (the kernel prints {0,1} as "0-1"). Throws on non-integers,
 * negatives and numbers above MAX_CPU_NUMBER.
 */
export function formatCpuList(cpus: readonly number[]): string {
  for (const c of cpus) {
    if (!Number.isInteger(c) || c < 0 || c > MAX_CPU_NUMBER) {
      throw new Error(`invalid CPU number ${String(c)}: expected an integer 0..${MAX_CPU_NUMBER}`);
    }
  }
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
