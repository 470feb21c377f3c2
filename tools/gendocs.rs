//! gendocs: writes the man pages and shell completions into a directory (`make docs`).
//!
//! Usage: `cargo run --release --example gendocs -- OUTDIR` writes OUTDIR/man8/NAME.8 and
//! OUTDIR/completions/{bash/NAME,zsh/_NAME,fish/NAME.fish} for every tool.

use std::path::PathBuf;
use std::process;

use tcptools::docs;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gendocs OUTDIR");
        process::exit(64);
    };
    match docs::generate(&PathBuf::from(out)) {
        Ok(files) => println!("gendocs: wrote {} files", files.len()),
        Err(err) => {
            eprintln!("gendocs: {err}");
            process::exit(1);
        }
    }
}
