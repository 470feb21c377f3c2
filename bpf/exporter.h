/* tcptools-exporter's settings and the layout of the counters and log2 histograms its BPF
 * programs keep in the kernel. Nothing per event reaches user space: a scrape reads and
 * sums the maps. */
#ifndef TCPTOOLS_EXPORTER_H
#define TCPTOOLS_EXPORTER_H

#define PORT_SET_WORDS 1024

/* How a connect left SYN_SENT (tcp_connect_attempts_total's `outcome`). */
enum connect_outcome {
	OUTCOME_ESTABLISHED = 0,
	OUTCOME_REFUSED = 1, /* an RST: tcp_reset() set ECONNREFUSED */
	OUTCOME_TIMEOUT = 2, /* the SYN retries ran out: ETIMEDOUT */
	OUTCOME_OTHER = 3,   /* close() during the connect, an ICMP error, ... */
	OUTCOMES = 4,
};

/* The arrays' layout, which user space takes from the skeleton (src/exporter/metrics.rs).
 * Counters and histograms are indexed densely; the family is the first index: 0 for
 * AF_INET, 1 for AF_INET6. */
enum exporter_layout {
	FAMILIES = 2,
	/* TCP states as the kernel numbers them (1 ESTABLISHED .. 12 NEW_SYN_RECV,
	 * 13 BOUND_INACTIVE since 6.8), with room to spare; a state beyond is not counted. */
	STATES = 16,
	/* Counter index: family * COUNTERS_PER_FAMILY + old * STATES + new for transitions,
	 * then TRANSITIONS + outcome for connect attempts. */
	TRANSITIONS = STATES * STATES,
	COUNTERS_PER_FAMILY = TRANSITIONS + OUTCOMES,
	COUNTERS = FAMILIES * COUNTERS_PER_FAMILY,
	/* Histogram index: family * HISTS_PER_FAMILY + one of these. Connect latency exists
	 * for the established and refused outcomes only (a timeout's time is the kernel's
	 * setting). */
	HIST_RTT = 0,
	HIST_CONNECT = 1, /* + outcome, for OUTCOME_ESTABLISHED, OUTCOME_REFUSED */
	HIST_STATE = 3,   /* + the state left */
	HISTS_PER_FAMILY = HIST_STATE + STATES,
	HISTS = FAMILIES * HISTS_PER_FAMILY,
	/* The histograms' slots, on the grid of Prometheus' native histograms: user space sets
	 * the bounds (exporter_settings.hist_bounds, in ns; src/exporter/metrics.rs says which),
	 * slot 0 holds values up to the first bound (the native zero bucket), slot i values
	 * above bound i-1 up to bound i, the last slot values above the last bound. The
	 * table is a power of two long, padded with ~0, so that a fixed binary search of
	 * HIST_SEARCH_STEPS steps finds a slot. */
	HIST_BOUNDS = 73,
	HIST_SLOTS = HIST_BOUNDS + 1,
	HIST_BOUND_TABLE = 128,
	HIST_SEARCH_STEPS = 7,
};

struct exporter_hist {
	__u64 slots[HIST_SLOTS];
	__u64 sum_us; /* the values' sum in microseconds: u64 ns could wrap within weeks */
};

/* What the programs label their counts with besides family and states. */
enum group_by {
	GROUP_NONE = 0,
	GROUP_CGROUP = 1, /* the socket's cgroup v2 id */
	GROUP_NETNS = 2,  /* the socket's network namespace inode */
	/* The cgroup v2 id of the socket's cgroup's parent: for a container's socket its pod's
	 * cgroup, which outlives the container's (--group-by pod and namespace). */
	GROUP_CGROUP_PARENT = 3,
};

/* With --group-by, the histograms kept per group (--group-histograms); the others are kept
 * node-wide, in the arrays. */
enum grouped_hists {
	GROUPED_RTT = 1,
	GROUPED_CONNECT = 2,
	GROUPED_STATE = 4,
};

/* The key of a group's counter or histogram. */
struct group_key {
	__u64 group;
	__u32 index; /* as in the arrays */
	__u32 pad;
};

/* --group-by: a group's counts of one state left in one family (key index: family * STATES
 * + the state), so that a state change costs one lookup in the group maps: the
 * transitions out of the state, by the new state, and the time spent in it. */
struct group_state {
	__u64 to[STATES];
	struct exporter_hist time;
};

/* Set by user space before load; 0 everywhere counts every TCP socket, ungrouped. */
struct exporter_settings {
	__u64 lports[PORT_SET_WORDS]; /* bit p set: local port p counted (with filter_lports) */
	__u64 rports[PORT_SET_WORDS];
	__u64 hist_bounds[HIST_BOUND_TABLE]; /* ns, ascending, padded with ~0 */
	enum group_by group_by;
	__u8 filter_lports;
	__u8 filter_rports;
	__u8 grouped_hists; /* enum grouped_hists, or'ed */
	__u8 pad;
};

#endif
