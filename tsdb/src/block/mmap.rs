//! A read-only memory map of a block file or a head chunk segment: the one place the store
//! maps files.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};

/// A file mapped read-only (an empty file is an empty slice: it cannot be mapped).
#[derive(Debug)]
pub(crate) struct Mapped(Option<memmap2::Mmap>);

impl Mapped {
    pub(crate) fn open(path: &Path) -> Result<Mapped> {
        let file = File::open(path).map_err(Error::io("open", path))?;
        let len = file.metadata().map_err(Error::io("stat", path))?.len();
        if len == 0 {
            return Ok(Mapped(None));
        }
        // SAFETY: the files mapped are written once and renamed into place (blocks as a
        // temporary directory, head chunk segments as a temporary file), never modified
        // afterwards, and only deleted (which keeps the mapping valid on Unix). The map is
        // read-only.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(Error::io("mmap", path))?;
        Ok(Mapped(Some(map)))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes().len()
    }
}
