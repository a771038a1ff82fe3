//! Verification: the pure core. Fed, in position order, what a log holds at
//! each position (an event's canonical bytes, the chain's link, both or
//! either) and the checkpoints, it recomputes the chain and names every
//! position where the history differs from what was chained or signed.
//!
//! Two running hashes:
//! - `linked` follows the stored links: each event is checked against its
//!   own link, from the link before it, so one edited event is named alone
//!   and the rest of the log is still judged;
//! - `computed` is the chain recomputed from the events alone, from the
//!   anchor: only it is compared with signed checkpoints, so links
//!   rewritten without the key are caught at the next checkpoint.
//!
//! What cannot be detected: events removed after the last checkpoint
//! together with their links (nothing signed names them) unless a
//! checkpoint kept outside the database reaches past the new end.

use serde::Serialize;

use crate::canonical::{link, Hash};
use crate::checkpoint::{Checkpoint, PublicKey};

/// A link as stored beside the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Link {
    pub position: u64,
    /// The position of the link it follows (0 for the first).
    pub previous: u64,
    pub hash: Hash,
}

/// Why a position is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// The event no longer matches its link: body, metadata or envelope changed.
    Changed,
    /// The stored event cannot be read as JSON.
    Unreadable,
    /// The chain holds a link for the position but the event is gone.
    Missing,
    /// The event and its link are both gone (the next link names it).
    Removed,
    /// An event the chain never saw, inside the chained part of the log.
    Inserted,
    /// The links themselves do not follow one another.
    LinkBroken,
    /// The chain recomputed from the events differs from the signed one.
    CheckpointMismatch,
    /// A checkpoint whose signature fails (or is absent where required).
    BadSignature,
    /// A checkpoint names a position past the end of the log.
    Truncated,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub position: u64,
    pub problem: Problem,
    pub detail: String,
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The trusted start: 0 (genesis) or a checkpoint's position.
    pub anchor: u64,
    /// The last position looked at.
    pub end: u64,
    pub events: u64,
    /// Events past the chain's last link (the chain keeper has not reached them yet).
    pub unchained: u64,
    pub checkpoints: u64,
    pub unsigned_checkpoints: u64,
    /// The last checkpoint whose signature and hash held.
    pub last_good_checkpoint: Option<u64>,
    /// The key that signed them.
    pub key: Option<String>,
    /// In position order; at most [`MAX_FINDINGS`] (see `more_findings`).
    pub findings: Vec<Finding>,
    pub more_findings: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The first bad position and why.
    pub fn first(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

/// Findings kept in a report; more are counted.
pub const MAX_FINDINGS: usize = 1000;

/// One event's bytes, or why they could not be read.
pub type Content<'a> = Result<&'a [u8], String>;

pub struct Verifier {
    trusted: Option<PublicKey>,
    require_signatures: bool,
    computed: Hash,
    linked: Hash,
    last_link: u64,
    /// The position of the chain's last link: events past it are not chained yet.
    chain_end: u64,
    checkpoints: std::collections::VecDeque<Checkpoint>,
    /// Findings since the last signed checkpoint (a mismatch they explain is not repeated).
    since_good: usize,
    /// The last signed checkpoint's position (or the anchor).
    last_signed: u64,
    report: Report,
}

impl Verifier {
    /// Starts at `anchor` (0 with [`crate::canonical::GENESIS`], or a
    /// trusted checkpoint). `checkpoints` are checked as the positions pass
    /// them; `chain_end` is the last link's position.
    pub fn new(
        anchor: u64,
        anchor_hash: Hash,
        mut checkpoints: Vec<Checkpoint>,
        chain_end: u64,
        trusted: Option<PublicKey>,
    ) -> Verifier {
        checkpoints.retain(|c| c.position > anchor);
        checkpoints.sort_by_key(|c| c.position);
        checkpoints.dedup_by_key(|c| c.position);
        Verifier {
            require_signatures: trusted.is_some(),
            trusted,
            computed: anchor_hash,
            linked: anchor_hash,
            last_link: anchor,
            chain_end,
            checkpoints: checkpoints.into(),
            since_good: 0,
            last_signed: anchor,
            report: Report {
                anchor,
                end: anchor,
                events: 0,
                unchained: 0,
                checkpoints: 0,
                unsigned_checkpoints: 0,
                last_good_checkpoint: None,
                key: None,
                findings: Vec::new(),
                more_findings: 0,
            },
        }
    }

    fn find(&mut self, position: u64, problem: Problem, detail: String) {
        self.since_good += 1;
        if self.report.findings.len() < MAX_FINDINGS {
            self.report.findings.push(Finding {
                position,
                problem,
                detail,
            });
        } else {
            self.report.more_findings += 1;
        }
    }

    /// Checks the checkpoints below `position`.
    fn checkpoints_before(&mut self, position: u64) {
        while self
            .checkpoints
            .front()
            .is_some_and(|c| c.position < position)
        {
            let cp = self.checkpoints.pop_front().expect("just seen");
            self.checkpoint(cp);
        }
    }

    fn checkpoint(&mut self, cp: Checkpoint) {
        self.report.checkpoints += 1;
        let signed = match cp.check_signature(self.trusted.as_ref()) {
            Ok(()) => {
                self.report.key = cp.public_key.clone();
                // The first key seen is the one every later checkpoint must match.
                if self.trusted.is_none() {
                    self.trusted = cp
                        .public_key
                        .as_deref()
                        .and_then(|k| PublicKey::decode(k).ok());
                    self.require_signatures = true;
                }
                true
            }
            Err(_) if cp.signature.is_none() && !self.require_signatures => {
                self.report.unsigned_checkpoints += 1;
                false
            }
            Err(why) => {
                self.find(
                    cp.position,
                    Problem::BadSignature,
                    format!("the checkpoint at {}: {why}", cp.position),
                );
                return;
            }
        };
        let matched = cp.hash == self.computed;
        if !matched {
            if self.since_good == 0 {
                let since = self.last_signed;
                self.find(
                    cp.position,
                    Problem::CheckpointMismatch,
                    format!(
                        "the chain recomputed from the events differs from the one {} at {}: history in positions {}..={} was rewritten together with its links",
                        if signed { "signed" } else { "recorded" },
                        cp.position,
                        since + 1,
                        cp.position
                    ),
                );
            }
            if !signed {
                return;
            }
            // Judge what follows from the signed state.
            self.computed = cp.hash;
        }
        if signed {
            if matched {
                self.report.last_good_checkpoint = Some(cp.position);
            }
            self.since_good = 0;
            self.last_signed = cp.position;
        }
    }

    /// What the log holds at `position` (after every lower position).
    pub fn step(&mut self, position: u64, event: Option<Content<'_>>, link_row: Option<&Link>) {
        // A link that does not follow the one before is reported first: a
        // removal explains the checkpoint mismatches it causes.
        let broken = link_row.filter(|l| l.previous != self.last_link);
        if let Some(l) = broken {
            if l.previous > self.last_link && l.previous < position {
                self.find(
                    l.previous,
                    Problem::Removed,
                    format!(
                        "position {}: the event and its link were removed (the link at {position} follows it)",
                        l.previous
                    ),
                );
            } else {
                self.find(
                    position,
                    Problem::LinkBroken,
                    format!(
                        "position {position}: its link follows position {}, but the link before it is at {}",
                        l.previous, self.last_link
                    ),
                );
            }
        }
        self.checkpoints_before(position);
        self.report.end = self.report.end.max(position);
        if let Some(l) = broken {
            // The link at `position` was made from a link not at hand: its
            // own event cannot be checked against it.
            if let Some(Ok(bytes)) = &event {
                self.computed = link(&self.computed, bytes);
                self.report.events += 1;
            }
            self.linked = l.hash;
            self.last_link = position;
            return;
        }
        match (event, link_row) {
            (Some(Ok(bytes)), Some(l)) => {
                self.report.events += 1;
                if link(&self.linked, bytes) != l.hash {
                    self.find(
                        position,
                        Problem::Changed,
                        format!("position {position}: the event no longer matches its link (its body, metadata or envelope was changed)"),
                    );
                }
                self.computed = link(&self.computed, bytes);
                self.linked = l.hash;
                self.last_link = position;
            }
            (Some(Ok(bytes)), None) => {
                self.report.events += 1;
                self.computed = link(&self.computed, bytes);
                if position <= self.chain_end {
                    self.find(
                        position,
                        Problem::Inserted,
                        format!("position {position}: an event the chain never held (inserted after it was chained)"),
                    );
                } else {
                    // Past the chain's end: not chained yet; what follows is
                    // chained from it once the keeper gets there.
                    self.report.unchained += 1;
                    self.linked = self.computed;
                    self.last_link = position;
                }
            }
            (Some(Err(why)), l) => {
                self.find(
                    position,
                    Problem::Unreadable,
                    format!("position {position}: the stored event cannot be read ({why})"),
                );
                if let Some(l) = l {
                    self.linked = l.hash;
                    self.last_link = position;
                }
            }
            (None, Some(l)) => {
                self.find(
                    position,
                    Problem::Missing,
                    format!(
                        "position {position}: the event was deleted (the chain holds its link)"
                    ),
                );
                self.linked = l.hash;
                self.last_link = position;
            }
            (None, None) => {}
        }
    }

    /// Ends at `end` (the log's last position): the checkpoints left name
    /// positions the log no longer reaches.
    pub fn finish(mut self, end: u64) -> Report {
        if end < self.report.anchor {
            self.find(
                self.report.anchor,
                Problem::Truncated,
                format!(
                    "the log ends at {end}, before the trusted checkpoint at {} it must reach",
                    self.report.anchor
                ),
            );
        }
        self.checkpoints_before(end + 1);
        self.report.end = self.report.end.max(end);
        let rest: Vec<_> = self.checkpoints.drain(..).collect();
        if let Some(first) = rest.first() {
            let last = rest.last().expect("not empty");
            self.find(
                first.position,
                Problem::Truncated,
                format!(
                    "the log ends at {end}, but checkpoint{} at {}{} name{} later positions: events after {end} were removed",
                    if rest.len() > 1 { "s" } else { "" },
                    first.position,
                    if rest.len() > 1 { format!("..={}", last.position) } else { String::new() },
                    if rest.len() > 1 { "" } else { "s" },
                ),
            );
        }
        self.report.findings.sort_by_key(|f| f.position);
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::GENESIS;
    use crate::checkpoint::AuditKey;
    use chrono::Utc;

    /// Ten events, their links, checkpoints at 4 and 8.
    fn log() -> (Vec<Vec<u8>>, Vec<Link>, Vec<Checkpoint>, AuditKey) {
        let key = AuditKey::from_seed([1; 32]);
        let events: Vec<Vec<u8>> = (1..=10)
            .map(|i| format!("{{\"e\":{i}}}").into_bytes())
            .collect();
        let mut links = Vec::new();
        let mut h = GENESIS;
        let mut cps = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let p = i as u64 + 1;
            h = link(&h, e);
            links.push(Link {
                position: p,
                previous: p - 1,
                hash: h,
            });
            if p.is_multiple_of(4) {
                cps.push(Checkpoint::new(p, h, Utc::now(), Some(&key)));
            }
        }
        (events, links, cps, key)
    }

    fn run(
        events: &[Option<Vec<u8>>],
        links: &[Option<Link>],
        cps: Vec<Checkpoint>,
        key: &AuditKey,
    ) -> Report {
        let end = links
            .iter()
            .flatten()
            .map(|l| l.position)
            .max()
            .unwrap_or(0);
        let mut v = Verifier::new(0, GENESIS, cps, end, Some(key.public()));
        for p in 1..=events.len().max(links.len()) {
            let e = events.get(p - 1).cloned().flatten();
            let l = links.get(p - 1).cloned().flatten();
            v.step(p as u64, e.as_deref().map(Ok), l.as_ref());
        }
        let last = events
            .iter()
            .rposition(|e| e.is_some())
            .map_or(0, |i| i + 1);
        v.finish(last as u64)
    }

    fn some<T: Clone>(v: &[T]) -> Vec<Option<T>> {
        v.iter().cloned().map(Some).collect()
    }

    #[test]
    fn an_untouched_log_verifies() {
        let (e, l, c, k) = log();
        let r = run(&some(&e), &some(&l), c, &k);
        assert!(r.ok(), "{:?}", r.findings);
        assert_eq!(
            (r.events, r.checkpoints, r.last_good_checkpoint),
            (10, 2, Some(8))
        );
    }

    #[test]
    fn each_tampering_is_named_at_its_position() {
        let (e, l, c, k) = log();
        let first = |r: Report| r.first().map(|f| (f.position, f.problem));
        // A changed event.
        let mut changed = some(&e);
        changed[5] = Some(b"{\"e\":66}".to_vec());
        assert_eq!(
            first(run(&changed, &some(&l), c.clone(), &k)),
            Some((6, Problem::Changed))
        );
        // A deleted event.
        let mut gone = some(&e);
        gone[2] = None;
        assert_eq!(
            first(run(&gone, &some(&l), c.clone(), &k)),
            Some((3, Problem::Missing))
        );
        // Deleted with its link.
        let mut links = some(&l);
        links[2] = None;
        assert_eq!(
            first(run(&gone, &links, c.clone(), &k)),
            Some((3, Problem::Removed))
        );
        // Swapped.
        let mut swapped = some(&e);
        swapped.swap(1, 6);
        let r = run(&swapped, &some(&l), c.clone(), &k);
        assert_eq!(
            r.findings.iter().map(|f| f.position).collect::<Vec<_>>(),
            vec![2, 7]
        );
        // Links rewritten to match a changed event: caught by the checkpoint.
        let mut rewritten = some(&e);
        rewritten[5] = Some(b"{\"e\":66}".to_vec());
        let mut h = GENESIS;
        let mut relinked = Vec::new();
        for (i, x) in rewritten.iter().enumerate() {
            h = link(&h, x.as_ref().unwrap());
            relinked.push(Some(Link {
                position: i as u64 + 1,
                previous: i as u64,
                hash: h,
            }));
        }
        let r = run(&rewritten, &relinked, c.clone(), &k);
        assert_eq!(first(r.clone()), Some((8, Problem::CheckpointMismatch)));
        assert!(
            r.findings[0].detail.contains("5..=8"),
            "{}",
            r.findings[0].detail
        );
        // ... and re-signed with another key.
        let forger = AuditKey::from_seed([2; 32]);
        let forged: Vec<_> = c
            .iter()
            .map(|cp| {
                let hash = relinked[cp.position as usize - 1].as_ref().unwrap().hash;
                Checkpoint::new(cp.position, hash, cp.signed_at, Some(&forger))
            })
            .collect();
        assert_eq!(
            first(run(&rewritten, &relinked, forged, &k)),
            Some((4, Problem::BadSignature))
        );
        // Truncated past the last checkpoint (events and links).
        let r = run(&some(&e[..6]), &some(&l[..6]), c.clone(), &k);
        assert_eq!(first(r), Some((8, Problem::Truncated)));
        // Truncated after the last checkpoint: nothing names it.
        let r = run(&some(&e[..9]), &some(&l[..9]), c.clone(), &k);
        assert!(r.ok(), "undetectable by design: {:?}", r.findings);
        // Inserted inside the chained part (at a position that had none).
        let mut holes = some(&e);
        holes.insert(4, Some(b"{\"e\":\"new\"}".to_vec()));
        let mut hl: Vec<Option<Link>> = some(&l)
            .into_iter()
            .map(|x| {
                x.map(|mut l| {
                    if l.position >= 5 {
                        l.position += 1;
                    }
                    if l.previous >= 5 {
                        l.previous += 1;
                    }
                    l
                })
            })
            .collect();
        hl.insert(4, None);
        let cps: Vec<_> = c
            .iter()
            .map(|cp| {
                let mut cp = cp.clone();
                if cp.position >= 5 {
                    cp = Checkpoint::new(cp.position + 1, cp.hash, cp.signed_at, Some(&k));
                }
                cp
            })
            .collect();
        let r = run(&holes, &hl, cps, &k);
        assert_eq!(
            first(r.clone()),
            Some((5, Problem::Inserted)),
            "{:?}",
            r.findings
        );
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    }

    #[test]
    fn a_log_that_ends_before_its_trusted_start_is_truncated() {
        let (_, l, _, k) = log();
        let v = Verifier::new(8, l[7].hash, Vec::new(), 5, Some(k.public()));
        let r = v.finish(5);
        assert_eq!(
            r.first().map(|f| (f.position, f.problem)),
            Some((8, Problem::Truncated))
        );
    }

    #[test]
    fn events_past_the_chain_are_counted_not_blamed() {
        let (e, l, c, k) = log();
        let r = run(&some(&e), &some(&l[..7]), c[..1].to_vec(), &k);
        assert!(r.ok(), "{:?}", r.findings);
        assert_eq!(r.unchained, 3);
    }
}
