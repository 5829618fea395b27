//! `vigil tui`: the terminal dashboard against a running vigil (or Prometheus).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use vigil_tsdb::time::parse_duration_ms;

#[derive(Debug, Args)]
pub(crate) struct TuiArgs {
    #[command(flatten)]
    api: super::ApiArgs,
    /// How often data is fetched.
    #[arg(long, value_name = "D", default_value = "2s")]
    refresh: String,
    /// A directory with `overview.yaml` and `api-detail.yaml` to show instead of the built-in
    /// dashboards.
    #[arg(long, value_name = "DIR")]
    dashboards: Option<PathBuf>,
}

impl TuiArgs {
    pub(crate) fn options(&self) -> Result<vigil_tui::Options> {
        let refresh = parse_duration_ms(&self.refresh).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(refresh >= 100, "--refresh must be at least 100ms");
        let mut opts = vigil_tui::Options::new(self.api.base());
        opts.http = Some(self.api.client()?);
        opts.refresh = Duration::from_millis(refresh as u64);
        opts.dashboards.clone_from(&self.dashboards);
        Ok(opts)
    }
}

pub(crate) fn run(args: &TuiArgs) -> Result<()> {
    let opts = args.options()?;
    // The screen is the dashboard's: log lines would tear it.
    crate::logs::silence();
    super::runtime()?.block_on(vigil_tui::run(opts))?;
    Ok(())
}
