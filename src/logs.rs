//! Logging to stderr, or elsewhere while the terminal dashboard owns the screen.

use std::io::Write;
use std::sync::OnceLock;

use parking_lot::Mutex;

/// Where log lines go when not to stderr.
static DIVERTED: OnceLock<Mutex<Box<dyn Write + Send>>> = OnceLock::new();

/// Logs to stderr (until [`divert`]ed); `VIGIL_LOG` (e.g. `debug`, `vigil_tsdb=trace`) sets
/// the level. Colors only on a terminal, and never when the logs are to be diverted to a file.
pub(crate) fn init(will_divert: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(!will_divert && std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// From now on, log to `out` instead of stderr (once; later calls are ignored).
pub(crate) fn divert(out: Box<dyn Write + Send>) {
    let _ = DIVERTED.set(Mutex::new(out));
}

/// From now on, drop log lines.
pub(crate) fn silence() {
    divert(Box::new(std::io::sink()));
}

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match DIVERTED.get() {
            Some(out) => out.lock().write(buf),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match DIVERTED.get() {
            Some(out) => out.lock().flush(),
            None => std::io::stderr().flush(),
        }
    }
}
