// `kvmlab schema`: what the command takes; what it does is in actions/schema.ts.
import type { Command } from 'commander';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description('print the JSON Schema of experiment files (for editor completion; experiments/experiment.schema.json is this output)')
    .action(async () => (await import('./actions/schema.js')).schema());
}
