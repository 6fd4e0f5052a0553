// Options that several commands take alike: which backend and which accelerator, the nested host's
// kernel, the QEMU, the mock's host, and how a lab box is reached; with their help.
import { Option } from 'commander';

export const backendOption = () => new Option('--backend <backend>', 'qemu (real QEMU), mock (simulated guest and host), auto (qemu when installed)').choices(['auto', 'qemu', 'mock']).default('auto');

export const hostKernelOption = () => new Option('--host-kernel <debian:SERIES|PATH>', "with --on nested: the nested host's kernel, a Debian series such as debian:6.12 (its image: kvmlab image build --arch nested-host --kernel debian:6.12) or a bzImage of your own (with --host-modules; run builds its image); over the experiment's nested.kernel");

export const hostModulesOption = () => new Option('--host-modules <dir>', "with --host-kernel PATH: that kernel's lib/modules/RELEASE directory (make modules_install INSTALL_MOD_PATH=DIR)");

export const accelOption = () => new Option('--accel <accel>', 'kvm, tcg, or auto (kvm when /dev/kvm can boot a guest)').choices(['auto', 'kvm', 'tcg']).default('auto');
export const qemuOption = () => new Option('--qemu <path>', 'the QEMU binary that runs the guests, e.g. a build tree\'s build/qemu-system-x86_64 (with --on nested: in the nested host); default qemu-system-<arch> on PATH');
export const mockHostOption = () => new Option('--mock-host <profile>', "with the mock backend, the host it simulates: intel-server (an Intel lab server), or nested-l1 (the KVM host --on nested boots, to hold the mock against it)").choices(['intel-server', 'nested-l1']);

export const sshKeyOption = () => new Option('--ssh-key <file>', 'with --on ssh://…: the private key that logs in to the box (default: ssh-agent, else ~/.ssh/id_ed25519, id_ecdsa, id_rsa)');
export const hostKeyOption = () => new Option('--host-key <SHA256:…>', "with --on ssh://…: the box's host key fingerprint (ssh-keygen -lf on the box), instead of ~/.ssh/known_hosts; a box showing another key is refused");

/** --mock-host: the mock host is the process's, chosen before the mock is loaded (backend/mock/profile.ts). */
export function chooseMockHost(profile: string | undefined): void {
  if (profile !== undefined) process.env.KVMLAB_MOCK_HOST = profile;
}
