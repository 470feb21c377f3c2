//! Per-socket state, the user-space half of bpf/sk_store.bpf.h: a tool's store sized for
//! the hook that loaded (tp_btf: the slot table, then socket storage; raw_tp: the fixed
//! table), and the sockets the fixed table had no room for.

use anyhow::{Context, Result};
use libbpf_rs::{MapMut, OpenMapMut};

use crate::attach::Hook;

/// Set to a number from 1 to 20, gives every slot table (bpf/slots.bpf.h) 2^N buckets
/// instead of the tool's own size: tests make it tiny, so that sockets go to socket storage.
pub const SLOT_BITS_ENV: &str = "TCPTOOLS_SLOT_BITS";

/// Keys per bucket of a slot table: `SLOT_WAYS` of bpf/slots.bpf.h, from its bucket type.
const SLOT_WAYS: u32 = (std::mem::size_of::<crate::skel::tcpstates::types::slot_bucket>()
    / std::mem::size_of::<u64>()) as u32;

/// A tool's store in its open skeleton: the maps `SK_STORE(name, ...)` declares
/// (`name_slots`, `name_values`, `name_table`; socket storage needs no sizing) and the
/// programs' `slot_bucket_bits`.
pub struct OpenStore<'a> {
    pub bucket_bits: &'a mut u32,
    pub slots: &'a mut OpenMapMut<'static>,
    pub values: &'a mut OpenMapMut<'static>,
    pub table: &'a mut OpenMapMut<'static>,
}

/// The [`OpenStore`] of `SK_STORE(name, ...)` in an open skeleton, with its programs'
/// read-only data: `open_store!(state, open, rodata)`. One rule per store the tools declare
/// (tcpstates' `state`, tcpconnlat's and the exporter's `start`), so a store renamed in C
/// fails the Rust build.
#[macro_export]
macro_rules! open_store {
    (state, $open:expr, $rodata:expr) => {
        $crate::open_store!(@maps $open, $rodata, state_slots, state_values, state_table)
    };
    (start, $open:expr, $rodata:expr) => {
        $crate::open_store!(@maps $open, $rodata, start_slots, start_values, start_table)
    };
    (@maps $open:expr, $rodata:expr, $slots:ident, $values:ident, $table:ident) => {
        $crate::sk_store::OpenStore {
            bucket_bits: &mut $rodata.slot_bucket_bits,
            slots: &mut $open.maps.$slots,
            values: &mut $open.maps.$values,
            table: &mut $open.maps.$table,
        }
    };
}

/// How a tool sizes its slot table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slots {
    /// 2^bits buckets of SLOT_WAYS sockets (or what SLOT_BITS_ENV says).
    Buckets(u32),
    /// No slot table: every socket's state in socket storage (tcpstates with owners, which
    /// an accepted socket learns from its listener's cloned storage).
    None,
}

/// Sizes `store` before load for `hook`'s programs; what they do not use gets one entry, so
/// that, say, the fixed table costs no memory while the tp_btf programs run.
pub fn size(store: OpenStore<'_>, hook: Hook, slots: Slots) -> Result<()> {
    let slots = if hook == Hook::TpBtf {
        slots
    } else {
        Slots::None
    };
    size_slots(store.bucket_bits, store.slots, store.values, slots)?;
    if hook == Hook::TpBtf {
        store
            .table
            .set_max_entries(1)
            .context("failed to size an unused map")?;
    }
    Ok(())
}

/// Sizes a slot table's maps, `slots` and `values`, and the programs' `bucket_bits`.
pub fn size_slots(
    bucket_bits: &mut u32,
    slots: &mut OpenMapMut<'_>,
    values: &mut OpenMapMut<'_>,
    how: Slots,
) -> Result<()> {
    *bucket_bits = match how {
        Slots::Buckets(bits) => std::env::var(SLOT_BITS_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|b| (1..=20).contains(b))
            .unwrap_or(bits),
        Slots::None => 0,
    };
    let buckets = 1u32 << *bucket_bits;
    slots
        .set_max_entries(buckets)
        .and_then(|()| values.set_max_entries(buckets * SLOT_WAYS))
        .context("failed to size the slot table")
}

/// Whether `hook`'s programs keep per-socket state in socket storage (behind the slot
/// table), rather than in the fixed table.
pub fn in_sk_storage(hook: Hook) -> bool {
    hook == Hook::TpBtf
}

/// Sockets the fixed table had no room for (`table_full`), all CPUs together: their next
/// change has no known start.
pub fn untracked(table_full: &MapMut<'_>) -> u64 {
    crate::stream::per_cpu_sum(table_full)
}
