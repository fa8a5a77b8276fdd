//! Where the client's output goes: a terminal with a prompt naming the room
//! a typed line will be sent to, a plain stream when piped, or whatever a
//! test wants to read.

use std::io::{IsTerminal, Write};

/// The output side of a session.
pub trait Screen: Send {
    /// Shows one line.
    fn line(&mut self, text: &str);
    /// Shows where the next typed line goes (`#general·3f2a> `); called
    /// whenever output stops, so the prompt is always the last thing shown.
    fn prompt(&mut self, label: &str);
    /// The user finished typing a line (the prompt scrolled away with it).
    fn line_typed(&mut self) {}
}

/// Standard output. On a terminal the prompt is redrawn below each output
/// line; piped, there is no prompt and output is plain lines.
#[derive(Debug)]
pub struct Terminal {
    interactive: bool,
    prompt_shown: bool,
}

impl Terminal {
    pub fn stdout() -> Terminal {
        Terminal {
            interactive: std::io::stdout().is_terminal(),
            prompt_shown: false,
        }
    }
}

impl Screen for Terminal {
    fn line(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if std::mem::take(&mut self.prompt_shown) {
            // Back to the start of the prompt's line, and clear it.
            let _ = write!(out, "\r\x1b[K");
        }
        let _ = writeln!(out, "{text}");
    }

    fn prompt(&mut self, label: &str) {
        if !self.interactive || self.prompt_shown {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{label}> ");
        let _ = out.flush();
        self.prompt_shown = true;
    }

    fn line_typed(&mut self) {
        self.prompt_shown = false;
    }
}
