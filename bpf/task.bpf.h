/* The current task, read the cheapest way each program type allows. */
#ifndef TCPTOOLS_TASK_BPF_H
#define TCPTOOLS_TASK_BPF_H

#include "hook.bpf.h"

/* The current task's name into comm (TASK_COMM_LEN bytes, as the kernel keeps it: NUL
 * after the name, zeros after that): in a tp_btf program plain loads from
 * bpf_get_current_task_btf() (Linux 5.11+), else bpf_get_current_comm(), whose call and
 * byte-wise copy cost a tcpstates run about 15 ns on this machine. */
static __always_inline void current_comm(__u8 *comm, const int hook)
{
	if (hook == HOOK_TP_BTF &&
	    bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)) {
		const struct task_struct *task = bpf_get_current_task_btf();

		__builtin_memcpy(comm, task->comm, TASK_COMM_LEN);
		return;
	}
	bpf_get_current_comm(comm, TASK_COMM_LEN);
}

#endif
