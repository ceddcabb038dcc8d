//! The flag a leader raises while it hands a group's leadership over (`transfer.rs`): its proposer holds
//! new writes meanwhile, since appending them would renew the lease the transfer waits out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct Handover(Arc<AtomicBool>);

impl Handover {
    pub fn active(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Raises the flag until the guard is dropped, however the transfer ends.
    pub fn raise(&self) -> Raised<'_> {
        self.0.store(true, Ordering::Relaxed);
        Raised(self)
    }
}

pub struct Raised<'a>(&'a Handover);

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        self.0 .0.store(false, Ordering::Relaxed);
    }
}
