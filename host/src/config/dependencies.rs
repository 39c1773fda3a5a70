//! `depends_on`: which apps (or, for the unit controller, which units)
//! need which, checked for unknown names and cycles, and the order they
//! start in.

use std::collections::BTreeMap;

use super::AppSpec;
use super::error::ConfigError;

/// Something named that names what it depends on: an app, a unit.
pub trait Dependent {
    /// What it is, for errors (`app`, `unit`).
    const NOUN: &'static str;
    /// Its name, as others' `depends_on` write it.
    fn name(&self) -> &str;
    /// The names it depends on.
    fn depends_on(&self) -> &[String];
}

impl Dependent for AppSpec {
    const NOUN: &'static str = "app";

    fn name(&self) -> &str {
        &self.name
    }

    fn depends_on(&self) -> &[String] {
        &self.depends_on
    }
}

/// Every problem with the `depends_on` of `items`: a name that is not
/// one of them, else each item on a cycle, as `(item, message)`.
pub(crate) fn problems<T: Dependent>(items: &[T]) -> Vec<(&T, String)> {
    let by_name: BTreeMap<&str, &T> = items.iter().map(|a| (a.name(), a)).collect();
    let mut problems = Vec::new();
    for item in items {
        for dependency in item.depends_on() {
            if !by_name.contains_key(dependency.as_str()) {
                problems.push((item, format!("no {} named `{dependency}`", T::NOUN)));
            }
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    for item in items {
        if let Some(cycle) = cycle_from(item, &by_name) {
            problems.push((item, format!("dependency cycle: {}", cycle.join(" → "))));
        }
    }
    problems
}

/// Reports every `depends_on` entry naming no app, and every cycle, at the
/// `depends_on` key of the app file (`at` maps an app to that position).
pub(super) fn check(apps: &[AppSpec], at: &BTreeMap<String, (usize, usize)>) -> Vec<ConfigError> {
    problems(apps)
        .into_iter()
        .map(|(app, message)| {
            let (line, col) = at.get(&app.name).copied().unwrap_or((1, 1));
            ConfigError {
                file: app.source.clone(),
                line,
                col,
                field: "depends_on".to_owned(),
                message,
            }
        })
        .collect()
}

/// The cycle through `start`, if `start` depends on itself, as names from
/// `start` back to `start`.
fn cycle_from<'a, T: Dependent>(
    start: &'a T,
    by_name: &BTreeMap<&str, &'a T>,
) -> Option<Vec<&'a str>> {
    // Depth-first from `start`, remembering the path; items are few.
    let mut path = vec![start.name()];
    let mut stack = vec![start.depends_on().iter()];
    while let Some(next) = stack.last_mut() {
        match next.next() {
            Some(dependency) if dependency == start.name() => {
                path.push(start.name());
                return Some(path);
            }
            Some(dependency) if !path.contains(&dependency.as_str()) => {
                let item = by_name.get(dependency.as_str())?;
                path.push(item.name());
                stack.push(item.depends_on().iter());
            }
            Some(_) => {}
            None => {
                stack.pop();
                path.pop();
            }
        }
    }
    None
}

/// The items in an order where each comes after everything it depends on
/// (ties in the given order); validation has refused cycles.
pub fn start_order<T: Dependent>(items: &[T]) -> Vec<&T> {
    let mut ordered: Vec<&T> = Vec::with_capacity(items.len());
    while ordered.len() < items.len() {
        let before = ordered.len();
        for item in items {
            let placed = |name: &str| ordered.iter().any(|a| a.name() == name);
            if !placed(item.name()) && item.depends_on().iter().all(|d| placed(d)) {
                ordered.push(item);
            }
        }
        if ordered.len() == before {
            // Only reachable with a cycle, which validation refuses: keep
            // the rest in the given order rather than loop.
            let rest: Vec<&T> = items
                .iter()
                .filter(|a| !ordered.iter().any(|o| o.name() == a.name()))
                .collect();
            ordered.extend(rest);
        }
    }
    ordered
}
