// `kvmlab setup [--on WHERE]`: host-scripts/setup.sh, here or on a lab box (targets/box.ts ships it).
import { execa } from 'execa';
import { InputError } from '../../errors.js';
import { createProgress } from '../../run/progress.js';
import { setupBox } from '../../targets/box.js';
import { parseOn } from '../../targets/on.js';
import { packagePath } from '../../util/package-dir.js';

export async function setup(flags: { on: string; sshKey?: string; hostKey?: string }): Promise<void> {
  const on = parseOn(flags.on);
  if (on === 'nested') throw new InputError('setup --on nested: the nested host is an image kvmlab builds here; `kvmlab setup` (here) builds it, or `kvmlab image build --arch nested-host`');
  if (typeof on === 'object') {
    process.exitCode = await setupBox(on, { sshKey: flags.sshKey, hostKey: flags.hostKey }, createProgress(process.stderr));
    return;
  }
  const r = await execa('bash', [packagePath('host-scripts', 'setup.sh')], { stdio: 'inherit', reject: false });
  process.exitCode = r.exitCode ?? 3;
}
