//! The stdout sink: buffered, flushed after each batch of events, quiet on a closed pipe.

use std::io::{self, BufWriter, ErrorKind, Stdout, Write};
use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Buffered stdout that remembers when the reader went away.
pub struct Output {
    writer: BufWriter<Stdout>,
    closed: bool,
}

/// What a pipe on stdout is grown to hold (Linux's default is 64 KiB): a reader at the
/// other end that lags for a moment does not block the tool while the kernel's event
/// buffers fill.
const PIPE_BYTES: i32 = 1 << 20;

impl Output {
    pub fn stdout() -> Self {
        grow_pipe();
        Output {
            writer: BufWriter::with_capacity(1 << 16, io::stdout()),
            closed: false,
        }
    }

    /// Writes what `render` produces; once stdout is closed, does nothing.
    pub fn emit(
        &mut self,
        render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = render(&mut self.writer);
        self.settle(result)
    }

    /// Sends everything buffered to stdout.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let result = self.writer.flush();
        self.settle(result)
    }

    /// True once stdout is closed (`tool | head`): time to end quietly. Also notices a
    /// reader that went away while nothing was written.
    pub fn is_closed(&mut self) -> bool {
        if !self.closed && reader_gone() {
            self.closed = true;
        }
        self.closed
    }

    fn settle(&mut self, result: io::Result<()>) -> io::Result<()> {
        match result {
            Err(err) if err.kind() == ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            other => other,
        }
    }
}

/// Grows stdout's buffer where it is a pipe; elsewhere (a file, a terminal) the call
/// fails and nothing changes.
fn grow_pipe() {
    let _ = nix::fcntl::fcntl(
        io::stdout().as_fd(),
        nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES),
    );
}

/// A pipe whose reader has gone reports POLLERR on its write end.
fn reader_gone() -> bool {
    let stdout = io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A text line built column by column, padded as printf's `%-Ns`, `%-Nd` and `%-Nx`
/// pad: plain byte pushes, several times cheaper per event than `write!`.
#[derive(Default)]
pub struct Line {
    buf: Vec<u8>,
}

impl Line {
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The underlying buffer, for the rare column that needs `write!`.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub fn text(&mut self, s: &str) -> &mut Self {
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    /// `%-Ns`: left-aligned, padded with spaces to `width`, never cut.
    pub fn left(&mut self, s: &[u8], width: usize) -> &mut Self {
        self.buf.extend_from_slice(s);
        self.pad(s.len(), width)
    }

    /// `%Ns`: right-aligned.
    pub fn right(&mut self, s: &[u8], width: usize) -> &mut Self {
        self.pad(s.len(), width);
        self.buf.extend_from_slice(s);
        self
    }

    /// `%-Nd`/`%-Nu`.
    pub fn dec(&mut self, n: u64, width: usize) -> &mut Self {
        let mut digits = itoa::Buffer::new();
        self.left(digits.format(n).as_bytes(), width)
    }

    /// `%-Nx`: lowercase hex, no `0x`.
    pub fn hex(&mut self, n: u64, width: usize) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            digits[at] = b"0123456789abcdef"[(rest & 15) as usize];
            rest >>= 4;
            if rest == 0 {
                break;
            }
        }
        self.left(&digits[at..], width)
    }

    fn pad(&mut self, len: usize, width: usize) -> &mut Self {
        if len < width {
            self.buf.resize(self.buf.len() + (width - len), b' ');
        }
        self
    }
}

#[cfg(test)]
mod line_tests {
    use super::Line;

    #[test]
    fn columns_pad_like_printf() {
        let mut line = Line::default();
        line.hex(0xffff8881064b0940, 16)
            .text("|")
            .hex(0, 3)
            .text("|")
            .dec(7673, 7)
            .text("|")
            .dec(123456789, 5)
            .text("|")
            .left(b"abc", 2)
            .text("|")
            .right(b"ab", 4);
        assert_eq!(
            String::from_utf8_lossy(line.as_bytes()),
            "ffff8881064b0940|0  |7673   |123456789|abc|  ab"
        );
    }
}
