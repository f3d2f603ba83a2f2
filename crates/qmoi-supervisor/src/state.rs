//! The table of component states shared between the component tasks, the aggregator and
//! the control socket. Guarded by a std `Mutex` that is never held across an `.await`.

pub use qmoi_core::overview::{ComponentStatus, RestartEvent, State};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The shared table, keyed by component id.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<BTreeMap<String, ComponentStatus>>>);

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<String, ComponentStatus>> {
        // Poisoning means a task panicked while holding the lock; the data is still the
        // best we have, and refusing to serve status would be worse.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Apply `f` to one component's entry.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut ComponentStatus)) {
        if let Some(c) = self.lock().get_mut(id) {
            f(c);
        }
    }

    pub fn snapshot(&self) -> Vec<ComponentStatus> {
        self.lock().values().cloned().collect()
    }
}
