//! Health checks as Route 53 runs them: an edge changes state only after `threshold` checks in a row
//! disagree with it, so one slow answer does not move clients.

use std::collections::HashMap;

pub struct Health {
    threshold: u32,
    /// Per edge: healthy, and how many checks in a row said otherwise.
    edges: HashMap<String, (bool, u32)>,
}

impl Health {
    /// Every edge starts healthy, so the first answers do not wait for checks.
    pub fn new<'a>(edges: impl IntoIterator<Item = &'a str>, threshold: u32) -> Health {
        Health { threshold: threshold.max(1), edges: edges.into_iter().map(|e| (e.to_string(), (true, 0))).collect() }
    }

    /// Records one check; returns the edge's new state when it changed.
    pub fn observe(&mut self, edge: &str, passed: bool) -> Option<bool> {
        let (healthy, against) = self.edges.get_mut(edge)?;
        if passed == *healthy {
            *against = 0;
            return None;
        }
        *against += 1;
        if *against < self.threshold {
            return None;
        }
        *healthy = passed;
        *against = 0;
        Some(passed)
    }

    pub fn healthy(&self, edge: &str) -> bool {
        self.edges.get(edge).is_some_and(|(h, _)| *h)
    }

    /// Every edge and whether it is healthy.
    pub fn all(&self) -> std::collections::BTreeMap<String, bool> {
        self.edges.iter().map(|(e, (h, _))| (e.clone(), *h)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_after_threshold_checks_in_a_row() {
        let mut h = Health::new(["a", "b"], 3);
        assert!(h.healthy("a") && !h.healthy("unknown"));
        assert_eq!(h.observe("a", false), None);
        assert_eq!(h.observe("a", false), None);
        assert_eq!(h.observe("a", true), None); // the streak starts again
        assert_eq!(h.observe("a", false), None);
        assert_eq!(h.observe("a", false), None);
        assert_eq!(h.observe("a", false), Some(false));
        assert!(!h.healthy("a") && h.healthy("b"));
        assert_eq!(h.observe("a", false), None);
        assert_eq!(h.observe("a", true), None);
        assert_eq!(h.observe("a", true), None);
        assert_eq!(h.observe("a", true), Some(true));
        assert_eq!(h.observe("unknown", false), None);
    }
}
