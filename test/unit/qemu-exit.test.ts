import { describe, expect, it } from 'vitest';
import { exitText } from '../../src/backend/qemu/qemu-vm.js';

describe('how QEMU ended, in a line', () => {
  it('names a signal, or what kept it from running', () => {
    expect(exitText({ signal: 'SIGKILL', exitCode: undefined }, '', undefined, false)).toBe('QEMU was killed by SIGKILL');
    expect(exitText({ exitCode: undefined, shortMessage: 'spawn ENOENT' }, '', undefined, false)).toBe('QEMU did not run: spawn ENOENT');
  });

  it('takes the guest\'s reset or power-off from QMP when QMP said it', () => {
    expect(exitText({ exitCode: 0 }, '', { guest: true, reason: 'guest-reset' }, false)).toBe('QEMU exited with status 0 (the guest ended it: QMP SHUTDOWN reason guest-reset, the guest reset (-no-reboot makes QEMU exit))');
    expect(exitText({ exitCode: 0 }, '', { guest: true, reason: 'guest-shutdown' }, false)).toBe('QEMU exited with status 0 (the guest ended it: QMP SHUTDOWN reason guest-shutdown)');
  });

  it('says what QEMU printed last, else that a silent exit 0 is the guest\'s own (an L2 reset in the nested host gave one)', () => {
    expect(exitText({ exitCode: 1 }, 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory', undefined, false)).toMatch(/status 1 \(qemu-system-x86_64: -accel kvm: failed/);
    expect(exitText({ exitCode: 0 }, 'qemu-system-x86_64: terminating on signal 15 from pid 7 (node)', undefined, false)).toMatch(/status 0 \(qemu-system-x86_64: terminating on signal 15/);
    expect(exitText({ exitCode: 0 }, '', undefined, false)).toBe('QEMU exited with status 0 (it printed nothing, as when the guest resets or powers off (-no-reboot makes QEMU exit on a reset) before QMP could report which)');
    // kvmlab's own quit over QMP: nothing to say of the guest
    expect(exitText({ exitCode: 0 }, '', undefined, true)).toBe('QEMU exited with status 0');
  });
});
