//! Process names as the kernel holds them, made safe to print.

use std::io::{self, Write};

/// A process name as the kernel holds it (up to the first NUL), with control characters
/// (bytes below 0x20 and 0x7f) replaced by `?` so no traced process can write escape
/// sequences to the operator's terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Comm {
    bytes: [u8; 16],
    len: usize,
}

impl Comm {
    pub fn from_kernel(raw: &[u8]) -> Self {
        let mut bytes = [0u8; 16];
        let mut len = 0;
        for &b in raw.iter().take(16).take_while(|&&b| b != 0) {
            bytes[len] = if b < 0x20 || b == 0x7f { b'?' } else { b };
            len += 1;
        }
        Comm { bytes, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The name as text for JSON and CSV, invalid UTF-8 shown as U+FFFD.
    pub fn to_text(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }

    /// printf's `%-W.Ms`: at most `max` bytes, padded with spaces to `width`.
    pub fn write_padded(&self, w: &mut dyn Write, width: usize, max: usize) -> io::Result<()> {
        let shown = &self.as_bytes()[..self.len.min(max)];
        w.write_all(shown)?;
        for _ in shown.len()..width {
            w.write_all(b" ")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_question_marks() {
        let comm = Comm::from_kernel(b"a\x1b[31mb\x7fc\0junk");
        assert_eq!(comm.as_bytes(), b"a?[31mb?c");
    }

    #[test]
    fn padding_truncates_to_max_bytes() {
        let comm = Comm::from_kernel(b"averylongcommand");
        let mut buf = Vec::new();
        comm.write_padded(&mut buf, 12, 12).unwrap();
        assert_eq!(buf, b"averylongcom");
        buf.clear();
        Comm::from_kernel(b"sh\0")
            .write_padded(&mut buf, 5, 10)
            .unwrap();
        assert_eq!(buf, b"sh   ");
    }
}
