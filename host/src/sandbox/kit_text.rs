//! Text that crosses from a kit into the host, tamed where it crosses:
//! capped, so a kit cannot grow medic's memory (or the journal, `medic
//! status`, alert payloads) with it, and with control characters escaped,
//! so it cannot forge a log line or drive the admin's terminal.

use super::bindings::{Capability, KitInfo, NextStep, SettingDoc, Verdict};

/// Bytes kept of a reason: `failed`, `degraded`, `unknown`, a `recover`
/// error, an `escalate`, a trap's words.
pub const REASON_MAX: usize = 1024;
/// Bytes kept of a short field a kit describes itself with (a name, a
/// version, a setting's key).
const NAME_MAX: usize = 128;

/// `text` with control characters escaped (`\n`, `\u{1b}`) and cut to at
/// most `max` bytes on a character boundary, ending in `…` when cut.
pub fn tame(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.into()
        };
        if out.len() + piece.len() > max {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// A kit's answer, made safe to keep, journal and show.
pub trait Tamed {
    /// The same answer with every string capped and escaped.
    fn tamed(self) -> Self;
}

impl Tamed for Verdict {
    fn tamed(self) -> Self {
        match self {
            Verdict::Healthy => Verdict::Healthy,
            Verdict::Degraded(reason) => Verdict::Degraded(tame(&reason, REASON_MAX)),
            Verdict::Failed(reason) => Verdict::Failed(tame(&reason, REASON_MAX)),
            Verdict::Unknown(reason) => Verdict::Unknown(tame(&reason, REASON_MAX)),
        }
    }
}

impl Tamed for Result<NextStep, String> {
    fn tamed(self) -> Self {
        match self {
            Ok(NextStep::Escalate(reason)) => Ok(NextStep::Escalate(tame(&reason, REASON_MAX))),
            Ok(step) => Ok(step),
            Err(error) => Err(tame(&error, REASON_MAX)),
        }
    }
}

impl Tamed for SettingDoc {
    fn tamed(self) -> Self {
        SettingDoc {
            key: tame(&self.key, NAME_MAX),
            required: self.required,
            default: self.default.map(|d| tame(&d, REASON_MAX)),
            doc: tame(&self.doc, REASON_MAX),
        }
    }
}

impl Tamed for Capability {
    fn tamed(self) -> Self {
        match self {
            Capability::Read(target) => Capability::Read(tame(&target, REASON_MAX)),
            Capability::Connect(target) => Capability::Connect(tame(&target, REASON_MAX)),
            Capability::Exec(target) => Capability::Exec(tame(&target, REASON_MAX)),
        }
    }
}

impl Tamed for KitInfo {
    fn tamed(self) -> Self {
        KitInfo {
            name: tame(&self.name, NAME_MAX),
            version: tame(&self.version, NAME_MAX),
            summary: tame(&self.summary, REASON_MAX),
            settings: self.settings.tamed(),
            wants: self.wants.tamed(),
        }
    }
}

impl Tamed for String {
    fn tamed(self) -> Self {
        tame(&self, NAME_MAX)
    }
}

impl<T: Tamed> Tamed for Vec<T> {
    fn tamed(self) -> Self {
        // As many entries as a kit could sensibly mean; more is a flood.
        const ENTRIES_MAX: usize = 256;
        self.into_iter()
            .take(ENTRIES_MAX)
            .map(Tamed::tamed)
            .collect()
    }
}

impl<T: Tamed> Tamed for Option<T> {
    fn tamed(self) -> Self {
        self.map(Tamed::tamed)
    }
}

impl<T: Tamed> Tamed for Result<T, String> {
    fn tamed(self) -> Self {
        self.map(Tamed::tamed).map_err(|e| tame(&e, REASON_MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(tame("plain ünïcode", 100), "plain ünïcode");
        assert_eq!(
            tame("down\n2026-11-30 INFO forged\u{1b}[2J", 100),
            "down\\n2026-11-30 INFO forged\\u{1b}[2J"
        );
        let long = "é".repeat(1000);
        let cut = tame(&long, 101);
        assert!(cut.len() <= 101 + '…'.len_utf8(), "{}", cut.len());
        assert!(cut.ends_with('…') && cut.starts_with("éé"));
        assert_eq!(tame("\n\n\n", 5), "\\n\\n…");
    }

    #[test]
    fn every_string_of_an_answer_is_tamed() {
        let huge = "x".repeat(1 << 20);
        let Verdict::Failed(reason) = Verdict::Failed(huge.clone()).tamed() else {
            panic!("same case");
        };
        assert!(reason.len() <= REASON_MAX + 3);
        let step: Result<NextStep, String> = Ok(NextStep::Escalate(huge.clone()));
        assert!(matches!(step.tamed(), Ok(NextStep::Escalate(r)) if r.len() <= REASON_MAX + 3));
        let env: Vec<String> = vec![huge; 10_000];
        let env = env.tamed();
        assert_eq!(env.len(), 256);
        assert!(env.iter().all(|name| name.len() <= NAME_MAX + 3));
    }
}
