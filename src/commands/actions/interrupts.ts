// Ctrl-C, SIGTERM and a hang-up (SIGHUP: a closed terminal, or a lab box's dropped connection,
// targets/leash.ts) for commands that change the host: the first asks the work to stop after
// teardown, a second exits at once (130); the host journal, if one was taken, is released — undoing
// what teardown did not — however the work ends.
import type { HostJournal } from '../../host/journal.js';
import { EXIT_INTERRUPTED } from '../../results/summary.js';
import type { Progress } from '../../model/progress.js';

export async function underInterrupts(progress: Progress, journal: () => HostJournal | undefined, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // a person asks twice to quit at once; a hang-up repeated is still the one hang-up
    if (sig === 'SIGHUP' && signals > 0) return;
    if (++signals > 1) process.exit(EXIT_INTERRUPTED);
    progress.notice(sig === 'SIGHUP' ? 'hang-up (SIGHUP: the terminal or the connection that started kvmlab closed): stopping after teardown' : `${sig}: stopping after teardown (again to quit at once)`);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  try {
    await work(controller.signal);
  } finally {
    for (const note of journal()?.release() ?? []) progress.notice(`host restored: ${note}`);
    progress.close();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  }
}
