// What a long command tells the person watching it, as it goes (run/progress.ts draws it).
export interface Progress {
  notice(text: string): void;
  variant(i: number, n: number, id: string, repetition: number, repetitions: number): void;
  step(i: number, n: number, name: string): void;
  finished(status: string, reason?: string): void;
  close(): void;
}
