// /proc/cpuinfo: the first processor's vendor, model and flags (x86, pseries, arm alike).

export interface CpuInfo {
  vendor: string;
  model: string;
  flags: string[];
}

/** The first processor's vendor, model and flags; pseries says "cpu"/"machine" instead. */
export function parseCpuInfo(text: string): CpuInfo {
  const field = (name: string): string | undefined => {
    const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text);
    return m?.[1]?.trim();
  };
  const vendor = field('vendor_id') ?? (field('cpu') ? 'IBM' : undefined) ?? field('CPU implementer') ?? 'unknown';
  const model = field('model name') ?? field('cpu') ?? field('Processor') ?? 'unknown';
  const flags = (field('flags') ?? field('Features') ?? '').split(/\s+/).filter(Boolean);
  return { vendor, model, flags };
}
