//! The log2 histogram printer of bcc's libbpf-tools (`print_log2_hist`), byte for byte.

use std::io::{self, Write};

/// Width of the star bar when every row fits the narrow layout.
const STARS: usize = 40;
/// Above this slot index, bcc switches to the wide layout (20-column ranges, 20 stars).
const NARROW_MAX_IDX: usize = 32;

/// The value range of log2 slot `i`: `2^i ..= 2^(i+1)-1`, with slot 0 holding 0 and 1.
pub fn slot_range(i: usize) -> (u64, u64) {
    let shift = i.min(63) as u32;
    let low = 1u64 << shift;
    let high = if shift == 63 {
        u64::MAX
    } else {
        (1u64 << (shift + 1)) - 1
    };
    if low == high {
        (low - 1, high)
    } else {
        (low, high)
    }
}

/// Prints `slots` as bcc does: nothing when every slot is empty; otherwise the header
/// (`val_type` names the unit) and one row per slot from `0 -> 1` to the last non-empty
/// one. Bars are 40 stars wide, 20 in the wide layout used when a slot above 32 is set.
///
/// One deliberate difference from bcc: bcc computes `count * 40` in 32-bit arithmetic
/// and prints counts with `%d`, so a slot holding more than 107,374,182 samples in one
/// interval gets a wrong bar, and one above 2^31 a negative count. Here the bar is
/// computed in 64 bits and the count printed unsigned; below those sizes the output is
/// identical.
pub fn write_log2_hist(w: &mut dyn Write, slots: &[u32], val_type: &str) -> io::Result<()> {
    let Some(idx_max) = slots.iter().rposition(|&v| v > 0) else {
        return Ok(());
    };
    let val_max = slots.iter().copied().max().unwrap_or(0);
    let wide = idx_max > NARROW_MAX_IDX;
    let (indent, type_width, range_width, stars) = if wide {
        (15, 29, 20, STARS / 2)
    } else {
        (5, 19, 10, STARS)
    };
    writeln!(
        w,
        "{:indent$}{val_type:<type_width$} : count    distribution",
        ""
    )?;
    for (i, &val) in slots.iter().enumerate().take(idx_max + 1) {
        let (low, high) = slot_range(i);
        write!(
            w,
            "{low:>range_width$} -> {high:<range_width$} : {val:<8} |"
        )?;
        write_stars(w, val, val_max, stars)?;
        w.write_all(b"|\n")?;
    }
    Ok(())
}

/// bcc's `print_stars`: `val * width / val_max` stars, padded with spaces to `width`.
fn write_stars(w: &mut dyn Write, val: u32, val_max: u32, width: usize) -> io::Result<()> {
    let stars = if val_max == 0 {
        0
    } else {
        (u64::from(val.min(val_max)) * width as u64 / u64::from(val_max)) as usize
    };
    write!(w, "{:*<stars$}{:width2$}", "", "", width2 = width - stars)
}
