import type { Command } from 'commander';
import { experimentJsonSchema } from '../spec/json-schema.js';

export function registerSchema(program: Command): void {
  program
    .command('schema')
    .description('print the JSON Schema of experiment files (for editor completion; experiments/experiment.schema.json is this output)')
    .action(() => {
      process.stdout.write(`${JSON.stringify(experimentJsonSchema(), null, 2)}\n`);
    });
}
