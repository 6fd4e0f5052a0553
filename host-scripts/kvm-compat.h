/* kvm-compat.h — <linux/kvm.h> plus the KVM capabilities and disable-exits bits kvmlab uses that
 * older installed headers lack. Values from include/uapi/linux/kvm.h. */
#ifndef KVMLAB_KVM_COMPAT_H
#define KVMLAB_KVM_COMPAT_H

#include <linux/kvm.h>

#ifndef KVM_CAP_X86_DISABLE_EXITS
#define KVM_CAP_X86_DISABLE_EXITS 143
#endif
#ifndef KVM_CAP_HALT_POLL
#define KVM_CAP_HALT_POLL 182
#endif
#ifndef KVM_CAP_BINARY_STATS_FD
#define KVM_CAP_BINARY_STATS_FD 203
#endif
#ifndef KVM_X86_DISABLE_EXITS_MWAIT
#define KVM_X86_DISABLE_EXITS_MWAIT (1 << 0)
#endif
#ifndef KVM_X86_DISABLE_EXITS_HLT
#define KVM_X86_DISABLE_EXITS_HLT (1 << 1)
#endif
#ifndef KVM_X86_DISABLE_EXITS_PAUSE
#define KVM_X86_DISABLE_EXITS_PAUSE (1 << 2)
#endif
#ifndef KVM_X86_DISABLE_EXITS_CSTATE
#define KVM_X86_DISABLE_EXITS_CSTATE (1 << 3)
#endif
#ifndef KVM_X86_DISABLE_EXITS_APERFMPERF
#define KVM_X86_DISABLE_EXITS_APERFMPERF (1 << 4)
#endif

#endif
