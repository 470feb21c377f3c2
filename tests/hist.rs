//! Golden tests of the log2 histogram printer against bcc's `print_log2_hist`: the
//! expected text is the output of bcc's trace_helpers.c printer compiled in a harness
//! (the first case is the example in bcc's tcprtt documentation).

use tcptools::hist::{slot_range, write_log2_hist};

/// The histogram as `write_log2_hist` prints it.
fn log2_hist_string(slots: &[u32], val_type: &str) -> String {
    let mut buf = Vec::new();
    write_log2_hist(&mut buf, slots, val_type).expect("writing to a Vec");
    String::from_utf8(buf).expect("UTF-8")
}

fn slots(n: usize, set: &[(usize, u32)]) -> Vec<u32> {
    let mut v = vec![0u32; n];
    for &(i, c) in set {
        v[i] = c;
    }
    v
}

#[test]
fn spec_golden_example() {
    let s = slots(
        27,
        &[
            (0, 3),
            (6, 5360),
            (7, 23834),
            (8, 11276),
            (9, 700),
            (13, 91),
        ],
    );
    assert_eq!(log2_hist_string(&s, "usecs"), EXAMPLE);
}

const EXAMPLE: &str = concat!(
    "     usecs               : count    distribution\n",
    "         0 -> 1          : 3        |                                        |\n",
    "         2 -> 3          : 0        |                                        |\n",
    "         4 -> 7          : 0        |                                        |\n",
    "         8 -> 15         : 0        |                                        |\n",
    "        16 -> 31         : 0        |                                        |\n",
    "        32 -> 63         : 0        |                                        |\n",
    "        64 -> 127        : 5360     |********                                |\n",
    "       128 -> 255        : 23834    |****************************************|\n",
    "       256 -> 511        : 11276    |******************                      |\n",
    "       512 -> 1023       : 700      |*                                       |\n",
    "      1024 -> 2047       : 0        |                                        |\n",
    "      2048 -> 4095       : 0        |                                        |\n",
    "      4096 -> 8191       : 0        |                                        |\n",
    "      8192 -> 16383      : 91       |                                        |\n",
);

#[test]
fn only_the_last_slot() {
    let s = slots(27, &[(26, 1)]);
    assert_eq!(log2_hist_string(&s, "msecs"), LAST_SLOT);
}

const LAST_SLOT: &str = concat!(
    "     msecs               : count    distribution\n",
    "         0 -> 1          : 0        |                                        |\n",
    "         2 -> 3          : 0        |                                        |\n",
    "         4 -> 7          : 0        |                                        |\n",
    "         8 -> 15         : 0        |                                        |\n",
    "        16 -> 31         : 0        |                                        |\n",
    "        32 -> 63         : 0        |                                        |\n",
    "        64 -> 127        : 0        |                                        |\n",
    "       128 -> 255        : 0        |                                        |\n",
    "       256 -> 511        : 0        |                                        |\n",
    "       512 -> 1023       : 0        |                                        |\n",
    "      1024 -> 2047       : 0        |                                        |\n",
    "      2048 -> 4095       : 0        |                                        |\n",
    "      4096 -> 8191       : 0        |                                        |\n",
    "      8192 -> 16383      : 0        |                                        |\n",
    "     16384 -> 32767      : 0        |                                        |\n",
    "     32768 -> 65535      : 0        |                                        |\n",
    "     65536 -> 131071     : 0        |                                        |\n",
    "    131072 -> 262143     : 0        |                                        |\n",
    "    262144 -> 524287     : 0        |                                        |\n",
    "    524288 -> 1048575    : 0        |                                        |\n",
    "   1048576 -> 2097151    : 0        |                                        |\n",
    "   2097152 -> 4194303    : 0        |                                        |\n",
    "   4194304 -> 8388607    : 0        |                                        |\n",
    "   8388608 -> 16777215   : 0        |                                        |\n",
    "  16777216 -> 33554431   : 0        |                                        |\n",
    "  33554432 -> 67108863   : 0        |                                        |\n",
    "  67108864 -> 134217727  : 1        |****************************************|\n",
);

#[test]
fn wide_layout_above_slot_32() {
    let s = slots(40, &[(0, 7), (5, 3), (33, 10), (34, 1)]);
    assert_eq!(log2_hist_string(&s, "nsecs"), WIDE);
}

const WIDE: &str = concat!(
    "               nsecs                         : count    distribution\n",
    "                   0 -> 1                    : 7        |**************      |\n",
    "                   2 -> 3                    : 0        |                    |\n",
    "                   4 -> 7                    : 0        |                    |\n",
    "                   8 -> 15                   : 0        |                    |\n",
    "                  16 -> 31                   : 0        |                    |\n",
    "                  32 -> 63                   : 3        |******              |\n",
    "                  64 -> 127                  : 0        |                    |\n",
    "                 128 -> 255                  : 0        |                    |\n",
    "                 256 -> 511                  : 0        |                    |\n",
    "                 512 -> 1023                 : 0        |                    |\n",
    "                1024 -> 2047                 : 0        |                    |\n",
    "                2048 -> 4095                 : 0        |                    |\n",
    "                4096 -> 8191                 : 0        |                    |\n",
    "                8192 -> 16383                : 0        |                    |\n",
    "               16384 -> 32767                : 0        |                    |\n",
    "               32768 -> 65535                : 0        |                    |\n",
    "               65536 -> 131071               : 0        |                    |\n",
    "              131072 -> 262143               : 0        |                    |\n",
    "              262144 -> 524287               : 0        |                    |\n",
    "              524288 -> 1048575              : 0        |                    |\n",
    "             1048576 -> 2097151              : 0        |                    |\n",
    "             2097152 -> 4194303              : 0        |                    |\n",
    "             4194304 -> 8388607              : 0        |                    |\n",
    "             8388608 -> 16777215             : 0        |                    |\n",
    "            16777216 -> 33554431             : 0        |                    |\n",
    "            33554432 -> 67108863             : 0        |                    |\n",
    "            67108864 -> 134217727            : 0        |                    |\n",
    "           134217728 -> 268435455            : 0        |                    |\n",
    "           268435456 -> 536870911            : 0        |                    |\n",
    "           536870912 -> 1073741823           : 0        |                    |\n",
    "          1073741824 -> 2147483647           : 0        |                    |\n",
    "          2147483648 -> 4294967295           : 0        |                    |\n",
    "          4294967296 -> 8589934591           : 0        |                    |\n",
    "          8589934592 -> 17179869183          : 10       |********************|\n",
    "         17179869184 -> 34359738367          : 1        |**                  |\n",
);

#[test]
fn slot_32_still_narrow() {
    let s = slots(40, &[(32, 1)]);
    let text = log2_hist_string(&s, "usecs");
    let last = text.lines().last().unwrap();
    assert_eq!(
        last,
        "4294967296 -> 8589934591 : 1        |****************************************|"
    );
    assert!(text.starts_with("     usecs               : count    distribution\n"));
}

#[test]
fn empty_prints_nothing() {
    assert_eq!(log2_hist_string(&[0; 27], "usecs"), "");
    assert_eq!(log2_hist_string(&[], "usecs"), "");
}

#[test]
fn rows_stop_at_last_non_empty_slot() {
    let s = slots(27, &[(2, 1), (3, 3), (4, 2)]);
    assert_eq!(log2_hist_string(&s, "usecs"), SMALL);
}

const SMALL: &str = concat!(
    "     usecs               : count    distribution\n",
    "         0 -> 1          : 0        |                                        |\n",
    "         2 -> 3          : 0        |                                        |\n",
    "         4 -> 7          : 1        |*************                           |\n",
    "         8 -> 15         : 3        |****************************************|\n",
    "        16 -> 31         : 2        |**************************              |\n",
);

#[test]
fn slot_ranges() {
    assert_eq!(slot_range(0), (0, 1));
    assert_eq!(slot_range(1), (2, 3));
    assert_eq!(slot_range(13), (8192, 16383));
    assert_eq!(slot_range(26), (67_108_864, 134_217_727));
    assert_eq!(slot_range(63), (1 << 63, u64::MAX));
}

#[test]
fn huge_counts_keep_correct_bars() {
    // bcc's 32-bit `val * 40` would wrap here; the printer computes in 64 bits.
    let s = slots(27, &[(0, 200_000_000), (1, 100_000_000)]);
    let text = log2_hist_string(&s, "usecs");
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[1],
        "         0 -> 1          : 200000000 |****************************************|"
    );
    assert_eq!(
        rows[2],
        "         2 -> 3          : 100000000 |********************                    |"
    );
}
