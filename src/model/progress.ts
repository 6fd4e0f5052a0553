// What a long command tells the person watching it, as it goes (run/progress.ts draws it).

/** Where a run of an experiment is when one repetition of a variant starts. */
export interface RunAt {
  /** This variant among the variants that run (1-based), and their number. */
  variant: number;
  variants: number;
  id: string;
  /** This repetition of the variant (1-based), and how many each variant gets. */
  repetition: number;
  repetitions: number;
  /** This run among all of them (variants × repetitions, interleaved; 1-based), and their number. */
  run: number;
  runs: number;
  /** What one run's sample: and wait: windows add up to, in ms: the part of a run the file declares. */
  windowsMs: number;
}

export interface Progress {
  notice(text: string): void;
  variant(at: RunAt): void;
  step(i: number, n: number, name: string): void;
  /** What a repetition is doing outside its steps: launching, waiting for the guest, a teardown stage. */
  stage(text: string): void;
  finished(status: string, reason?: string): void;
  close(): void;
}
