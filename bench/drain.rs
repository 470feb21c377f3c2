//! The lab's ring-buffer reader, shared by the bench examples that write records (the
//! floor's bcc reference, the pieces): they include this file as their `drain` module.

use std::time::Duration;

use anyhow::{Context, Result};
use tcptools::signal;

/// Says `ready`, then empties `rb`'s rings every few milliseconds until SIGINT or SIGTERM.
/// The programs never wake the reader (BPF_RB_NO_WAKEUP): the wait only paces the loop, so
/// every reserve finds room, as a tool's does; a full ring would measure a failed reserve.
pub fn until_stopped(rb: &libbpf_rs::RingBuffer<'_>) -> Result<()> {
    println!("ready");
    while !signal::stop_requested() {
        let drained = rb
            .poll(Duration::from_millis(5))
            .and_then(|()| rb.consume());
        match drained {
            Err(err) if err.kind() == libbpf_rs::ErrorKind::Interrupted => {}
            other => other.context("ring buffer")?,
        }
    }
    Ok(())
}
