//! `vigil check config FILE...`: validates configuration files and says where they are wrong.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::config::Config;

pub(crate) fn config(files: &[PathBuf]) -> Result<()> {
    let mut bad = 0;
    for f in files {
        match Config::load(f) {
            Ok(_) => println!("{}: OK", f.display()),
            Err(e) => {
                bad += 1;
                println!("{}: FAILED: {e:#}", f.display());
            }
        }
    }
    if bad > 0 {
        bail!("{bad} of {} files failed", files.len());
    }
    Ok(())
}
