import type { Command } from 'commander';
import { Option } from 'commander';
import { selectBackend } from '../backend/select.js';
import { InputError } from '../errors.js';
import { HostJournal } from '../host/journal.js';
import { writeReport } from '../report/report.js';
import { exitCodeOf, headline, verdictTable } from '../report/summary.js';
import { createProgress } from '../run/progress.js';
import { defaultOutDir, writeResults } from '../run/results.js';
import { runExperiment } from '../run/runner.js';
import { loadExperiment } from '../spec/load.js';

interface RunFlags {
  backend: 'auto' | 'qemu' | 'mock';
  accel: 'auto' | 'kvm' | 'tcg';
  out?: string;
  repeat?: string;
  only?: string;
  allowHostCommands?: boolean;
  quiet?: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run an experiment: every variant of its matrix, each repetition, then the verdict')
    .argument('<file>', 'experiment file (.yaml or .json)')
    .addOption(new Option('--backend <backend>', 'qemu (real QEMU), mock (simulated guest and host), auto (qemu when installed)').choices(['auto', 'qemu', 'mock']).default('auto'))
    .addOption(new Option('--accel <accel>', 'kvm, tcg, or auto (kvm when /dev/kvm can boot a guest)').choices(['auto', 'kvm', 'tcg']).default('auto'))
    .option('--out <dir>', 'results directory (default results/<experiment>/<timestamp>/)')
    .option('--repeat <n>', 'repetitions per variant (overrides the file)')
    .option('--only <pattern>', 'run only variants whose id matches this glob, e.g. "disable_exits=hlt*"')
    .option('--allow-host-commands', 'allow `host:` steps to run commands on this host')
    .option('-q, --quiet', 'no progress lines')
    .action(async (file: string, flags: RunFlags) => {
      const repeat = flags.repeat === undefined ? undefined : Number(flags.repeat);
      if (repeat !== undefined && !(Number.isInteger(repeat) && repeat >= 1 && repeat <= 1000)) throw new InputError(`--repeat ${flags.repeat}: give a whole number from 1 to 1000`);
      const loaded = await loadExperiment(file);
      const progress = createProgress(process.stderr, flags.quiet);
      let journal: HostJournal | undefined;
      const backend = await selectBackend(flags.backend, loaded.experiment.guest.arch, progress, () => (journal = HostJournal.acquire()));
      const out = flags.out ?? defaultOutDir(loaded.experiment.name);
      const controller = new AbortController();
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        if (signals > 1) process.exit(130);
        progress.notice(`${sig}: stopping after teardown (again to quit at once)`);
        controller.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const { summary, rows } = await runExperiment({
          loaded,
          backend,
          accel: flags.accel,
          out,
          repeat,
          only: flags.only,
          allowHostCommands: flags.allowHostCommands ?? false,
          progress,
          signal: controller.signal,
        });
        await writeResults(out, summary, rows);
        progress.close();
        process.stdout.write(`\n${headline(summary)}\n\n${verdictTable(summary)}\n\nresults: ${out}\n`);
        process.exitCode = exitCodeOf(summary);
        await writeReport(out, { print: process.stdout });
      } finally {
        // Whatever teardown did not undo (a failed rmdir, a QEMU that would not die) is undone here.
        for (const note of journal?.release() ?? []) progress.notice(`host restored: ${note}`);
        progress.close();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
