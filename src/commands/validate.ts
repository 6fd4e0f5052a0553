// `kvmlab validate FILE…`: what the command takes; what it does is in actions/validate.ts.
import type { Command } from 'commander';

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check experiment files without running them; prints each problem as file:line: field: what is wrong and what is allowed')
    .argument('<files...>', 'experiment files (.yaml or .json)')
    .option('--json', 'print one JSON document: each file, ok or its problems with line and column (problems still go to stderr)')
    .action(async (files: string[], flags: { json?: boolean }) => (await import('./actions/validate.js')).validate(files, flags));
}
