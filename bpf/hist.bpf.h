/* log2 slots of bcc's histograms: slot 0 holds 0 and 1, slot i holds 2^i .. 2^(i+1)-1. */
#ifndef TCPTOOLS_HIST_BPF_H
#define TCPTOOLS_HIST_BPF_H

static __always_inline __u32 log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 high = v >> 32;

	return high ? log2_u32(high) + 32 : log2_u32(v);
}

#endif
