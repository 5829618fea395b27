//! `vigil serve`: ingest, store, query, evaluate rules and send pages until stopped.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use parking_lot::Mutex;

use crate::ConfigArgs;
use crate::server::{self, App};

pub(crate) fn run(args: &ConfigArgs, listen: Option<SocketAddr>) -> Result<()> {
    let mut cfg = args.load()?;
    if let Some(addr) = listen {
        cfg.server.listen = addr;
    }
    let rt = super::runtime()?;
    let listener = rt.block_on(server::bind(&cfg))?;
    // The port the system chose, if the configuration asked for port 0.
    cfg.server.listen = listener.local_addr()?;
    let app = App::open(&cfg, args.config.clone())?;
    // Console receivers print one JSON line per page on stdout.
    let console: server::ConsoleWriter = Arc::new(Mutex::new(Box::new(std::io::stdout())));
    rt.block_on(async {
        tracing::info!(listen = %cfg.server.listen, data_dir = %cfg.storage.data_dir.display(), "vigil is serving");
        server::serve(&cfg, app, listener, console, server::shutdown_signal()).await
    })
}
