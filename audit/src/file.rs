//! The export format, and its verification with no database.
//!
//! JSON lines, each one object with one key:
//! - `{"header":{"format":"freshledger-audit-export/1","from":N,"to":M,
//!   "previous":P,"previous_hash":…,"exported_at":…}}`: the export holds
//!   positions `N..=M`; its first event's link follows the link at `P`;
//! - `{"event":{"position":p,"previous":q,"hash":…,"hashed":{…}}}`: an
//!   event exactly as the chain hashed it (see [`crate::canonical`]), and
//!   its link;
//! - `{"checkpoint":{…}}`: the signed checkpoints from `P` to `M`.

use std::io::BufRead;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{canonical_json, Hash};
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::verify::{Finding, Link, Problem, Report, Verifier};

pub const FORMAT: &str = "freshledger-audit-export/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub from: u64,
    pub to: u64,
    pub previous: u64,
    pub previous_hash: Hash,
    pub exported_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventLine {
    pub position: u64,
    pub previous: u64,
    pub hash: Hash,
    /// The event as the chain hashed it.
    pub hashed: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Event(EventLine),
    Checkpoint(Checkpoint),
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("the first line is not a {FORMAT} header")]
    NoHeader,
}

/// Verifies an export: every event against its link, every link against
/// the one before, every checkpoint's signature and hash. The export's
/// start is trusted only through the checkpoints it carries.
pub fn verify(input: impl BufRead, trusted: Option<PublicKey>) -> Result<Report, FileError> {
    let mut header = None;
    let mut events = Vec::new();
    let mut checkpoints = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(&line).map_err(|e| FileError::Line {
            line: i + 1,
            why: e.to_string(),
        })?;
        match parsed {
            Line::Header(h) if i == 0 => header = Some(h),
            Line::Header(_) => {
                return Err(FileError::Line {
                    line: i + 1,
                    why: "a second header".into(),
                })
            }
            Line::Event(e) => events.push(e),
            Line::Checkpoint(c) => checkpoints.push(c),
        }
    }
    let header = header.ok_or(FileError::NoHeader)?;
    if header.format != FORMAT {
        return Err(FileError::NoHeader);
    }
    events.sort_by_key(|e| e.position);
    let chain_end = events.last().map_or(header.previous, |e| e.position);
    let mut v = Verifier::new(
        header.previous,
        header.previous_hash,
        checkpoints,
        chain_end,
        trusted,
    );
    for e in &events {
        let content = if e.hashed.get("position").and_then(Value::as_u64) != Some(e.position) {
            Err("the line's position differs from the event's".to_string())
        } else {
            canonical_json(&e.hashed)
        };
        let link = Link {
            position: e.position,
            previous: e.previous,
            hash: e.hash,
        };
        v.step(
            e.position,
            Some(content.as_deref().map_err(Clone::clone)),
            Some(&link),
        );
    }
    let mut report = v.finish(chain_end.max(header.to));
    if chain_end < header.to {
        report.findings.push(Finding {
            position: chain_end + 1,
            problem: Problem::Truncated,
            detail: format!(
                "the header promises positions up to {}, the file ends at {chain_end}",
                header.to
            ),
        });
        report.findings.sort_by_key(|f| f.position);
    }
    Ok(report)
}
