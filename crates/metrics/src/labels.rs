//! The cardinality guard: label values come from input data (channel and step
//! names), so only the first `limit` distinct values of each kind become labels;
//! later newcomers are counted under `other`. Ids never reach here at all.

use hashbrown::HashSet;

/// Label value for names folded by the guard.
pub const OTHER: &str = "other";

/// Label value of a friction point without a step.
pub const NO_STEP: &str = "none";

#[derive(Debug)]
pub(crate) struct LabelGuard {
    limit: usize,
    channels: HashSet<String>,
    steps: HashSet<String>,
    pub(crate) folded: u64,
}

impl LabelGuard {
    pub(crate) fn new(limit: usize) -> Self {
        LabelGuard { limit, channels: HashSet::new(), steps: HashSet::new(), folded: 0 }
    }

    pub(crate) fn channel<'a>(&mut self, name: &'a str) -> &'a str {
        admit(&mut self.channels, self.limit, &mut self.folded, name)
    }

    /// Distinct channel and step values admitted so far: the guard's memory, at most `limit` each.
    #[cfg(test)]
    pub(crate) fn admitted(&self) -> (usize, usize) {
        (self.channels.len(), self.steps.len())
    }

    pub(crate) fn step<'a>(&mut self, name: Option<&'a str>) -> &'a str {
        match name {
            None => NO_STEP,
            Some(s) => admit(&mut self.steps, self.limit, &mut self.folded, s),
        }
    }
}

fn admit<'a>(seen: &mut HashSet<String>, limit: usize, folded: &mut u64, name: &'a str) -> &'a str {
    if seen.contains(name) {
        return name;
    }
    if seen.len() < limit {
        seen.insert(name.to_owned());
        return name;
    }
    *folded += 1;
    OTHER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_the_limit_fold_into_other_and_admitted_ones_stay() {
        let mut g = LabelGuard::new(2);
        assert_eq!(g.channel("web"), "web");
        assert_eq!(g.channel("app"), "app");
        assert_eq!(g.channel("phone"), OTHER);
        assert_eq!(g.channel("web"), "web");
        // Steps have their own budget.
        assert_eq!(g.step(Some("checkout")), "checkout");
        assert_eq!(g.step(None), NO_STEP);
        assert_eq!(g.folded, 1);
    }
}
