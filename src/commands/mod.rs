//! One module per subcommand. They parse their flags, build what they need, and return errors
//! for `main` to print.

pub(crate) mod check;
pub(crate) mod demo;
pub(crate) mod events;
pub(crate) mod import;
pub(crate) mod query;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod status;
pub(crate) mod tui;

/// A multi-threaded tokio runtime for commands that serve or call HTTP.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}
