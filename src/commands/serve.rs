//! `vigil serve`: ingest, store and query until stopped.

use std::net::SocketAddr;

use anyhow::Result;

use crate::ConfigArgs;
use crate::server::{self, App};

pub(crate) fn run(args: &ConfigArgs, listen: Option<SocketAddr>) -> Result<()> {
    let mut cfg = args.load()?;
    if let Some(addr) = listen {
        cfg.server.listen = addr;
    }
    let app = App::open(&cfg)?;
    super::runtime()?.block_on(async {
        let listener = server::bind(&cfg).await?;
        tracing::info!(listen = %cfg.server.listen, data_dir = %cfg.storage.data_dir.display(), "vigil is serving");
        server::serve(&cfg, app, listener, server::shutdown_signal()).await
    })
}
