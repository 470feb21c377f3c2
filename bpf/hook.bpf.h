/* How a program is attached, a compile-time constant of each program (bpf/programs.bpf.h):
 * it says how the program reads kernel memory (bpf/sock.bpf.h) and where it keeps
 * per-socket state (bpf/sk_store.bpf.h), so one handler body serves both hooks and each
 * program keeps only its own kind of access. */
#ifndef TCPTOOLS_HOOK_BPF_H
#define TCPTOOLS_HOOK_BPF_H

/* raw_tp: the tracepoint's arguments are plain numbers, kernel memory is read with probe
 * reads; per-socket state in a fixed table. */
#define HOOK_RAW_TP 0
/* tp_btf: BTF-typed arguments read with plain loads; per-socket state in the slot table,
 * then socket storage. */
#define HOOK_TP_BTF 1

#endif
