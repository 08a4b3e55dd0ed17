//! The file under an MCAP writer: buffered writes, `fdatasync` on flush, and the first I/O
//! error latched so that nothing is written after it (the recorder then seals the file).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Buffered bytes are written to the file once this many are pending.
const SPILL_BYTES: usize = 64 * 1024;

struct Inner {
    file: File,
    buf: Vec<u8>,
    /// Bytes handed to the kernel.
    written: u64,
    /// Bytes known to be on the device.
    synced: u64,
    /// The first error: (kind, OS error, text).
    error: Option<(io::ErrorKind, Option<i32>, String)>,
}

impl Inner {
    fn latched(&self) -> Option<io::Error> {
        self.error.as_ref().map(|(kind, os, text)| match os {
            Some(code) => io::Error::from_raw_os_error(*code),
            None => io::Error::new(*kind, text.clone()),
        })
    }

    fn fail(&mut self, err: io::Error) -> io::Error {
        if self.error.is_none() {
            self.error = Some((err.kind(), err.raw_os_error(), err.to_string()));
        }
        err
    }

    fn spill(&mut self) -> io::Result<()> {
        if let Some(err) = self.latched() {
            return Err(err);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.written += self.buf.len() as u64;
                self.buf.clear();
                Ok(())
            }
            Err(err) => Err(self.fail(err)),
        }
    }
}

/// A shared handle to one recording file; the MCAP writer writes through one clone, the
/// recorder syncs, patches and inspects through another.
#[derive(Clone)]
pub(crate) struct Sink {
    inner: Arc<Mutex<Inner>>,
}

impl Sink {
    pub fn new(file: File) -> Self {
        let inner = Inner {
            file,
            buf: Vec::with_capacity(SPILL_BYTES),
            written: 0,
            synced: 0,
            error: None,
        };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes accepted so far (written or buffered).
    pub fn position(&self) -> u64 {
        let inner = self.lock();
        inner.written + inner.buf.len() as u64
    }

    /// The first I/O error, if any (every later write fails with it).
    pub fn error(&self) -> Option<io::Error> {
        self.lock().latched()
    }

    /// Writes pending bytes and `fdatasync`s the file when anything is new since the last sync.
    pub fn sync(&self) -> io::Result<()> {
        let mut inner = self.lock();
        inner.spill()?;
        if inner.synced < inner.written {
            if let Err(err) = inner.file.sync_data() {
                return Err(inner.fail(err));
            }
            inner.synced = inner.written;
        }
        Ok(())
    }

    /// Overwrites `bytes` at `offset` (which must be before the current position).
    pub fn patch(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut inner = self.lock();
        inner.spill()?;
        if let Err(err) = inner.file.write_all_at(bytes, offset) {
            return Err(inner.fail(err));
        }
        // The next sync must cover the patch.
        inner.synced = inner.synced.min(offset);
        Ok(())
    }

    /// Stops all further writes with `err` (used once the file is being sealed by hand).
    pub fn close_with(&self, err: io::Error) {
        let mut inner = self.lock();
        inner.buf.clear();
        inner.fail(err);
    }

    /// A second handle on the file, for reading and sealing it.
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.lock().file.try_clone()
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut inner = self.lock();
        if let Some(err) = inner.latched() {
            return Err(err);
        }
        inner.buf.extend_from_slice(data);
        if inner.buf.len() >= SPILL_BYTES {
            inner.spill()?;
        }
        Ok(data.len())
    }

    /// Called by the MCAP writer after it closed a chunk: the chunk goes to the device.
    fn flush(&mut self) -> io::Result<()> {
        self.sync()
    }
}

impl Seek for Sink {
    /// Only reports the position: the MCAP writer runs with seeking disabled.
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::Current(0) => Ok(self.position()),
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, "recording files are append-only")),
        }
    }
}
