//! `depends_on`: which apps need which, checked for unknown names and
//! cycles, and the order apps start in.

use std::collections::BTreeMap;

use super::AppSpec;
use super::error::ConfigError;

/// Reports every `depends_on` entry naming no app, and every cycle, at the
/// `depends_on` key of the app file (`at` maps an app to that position).
pub(super) fn check(apps: &[AppSpec], at: &BTreeMap<String, (usize, usize)>) -> Vec<ConfigError> {
    let error = |app: &AppSpec, message: String| {
        let (line, col) = at.get(&app.name).copied().unwrap_or((1, 1));
        ConfigError {
            file: app.source.clone(),
            line,
            col,
            field: "depends_on".to_owned(),
            message,
        }
    };
    let by_name: BTreeMap<&str, &AppSpec> = apps.iter().map(|a| (a.name.as_str(), a)).collect();
    let mut errors = Vec::new();
    for app in apps {
        for dependency in &app.depends_on {
            if !by_name.contains_key(dependency.as_str()) {
                errors.push(error(app, format!("no app named `{dependency}`")));
            }
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    for app in apps {
        if let Some(cycle) = cycle_from(app, &by_name) {
            errors.push(error(
                app,
                format!("dependency cycle: {}", cycle.join(" → ")),
            ));
        }
    }
    errors
}

/// The cycle through `start`, if `start` depends on itself, as names from
/// `start` back to `start`.
fn cycle_from<'a>(
    start: &'a AppSpec,
    by_name: &BTreeMap<&str, &'a AppSpec>,
) -> Option<Vec<&'a str>> {
    // Depth-first from `start`, remembering the path; apps are few.
    let mut path = vec![start.name.as_str()];
    let mut stack = vec![start.depends_on.iter()];
    while let Some(next) = stack.last_mut() {
        match next.next() {
            Some(dependency) if dependency == &start.name => {
                path.push(start.name.as_str());
                return Some(path);
            }
            Some(dependency) if !path.contains(&dependency.as_str()) => {
                let app = by_name.get(dependency.as_str())?;
                path.push(app.name.as_str());
                stack.push(app.depends_on.iter());
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

/// The apps in an order where each comes after everything it depends on
/// (ties by name); the config has no cycles.
pub fn start_order(apps: &[AppSpec]) -> Vec<&AppSpec> {
    let mut ordered: Vec<&AppSpec> = Vec::with_capacity(apps.len());
    while ordered.len() < apps.len() {
        let before = ordered.len();
        for app in apps {
            let placed = |name: &str| ordered.iter().any(|a| a.name == name);
            if !placed(&app.name) && app.depends_on.iter().all(|d| placed(d)) {
                ordered.push(app);
            }
        }
        if ordered.len() == before {
            // Only reachable with a cycle, which validation refuses: keep
            // the rest in name order rather than loop.
            let rest: Vec<&AppSpec> = apps
                .iter()
                .filter(|a| !ordered.iter().any(|o| o.name == a.name))
                .collect();
            ordered.extend(rest);
        }
    }
    ordered
}
