//! Verification and export against the database.

use futures_util::{StreamExt, TryStreamExt};
use store::{Store, StoreError, StoredEvent};

use crate::canonical::{canonical, document};
use crate::chain;
use crate::checkpoint::{Checkpoint, PublicKey};
use crate::file::{self, EventLine, Header, Line};
use crate::verify::{Link, Report, Verifier};

/// Positions read at once, and how many such ranges are read in parallel.
const RANGE: u64 = 5_000;
const PARALLEL: usize = 4;

/// What one range of the log holds: each position's event (or why it
/// could not be read) and link.
struct Range {
    events: Vec<(u64, Result<Vec<u8>, String>)>,
    links: Vec<Link>,
}

/// Reads `(after, up_to]`: an event that cannot be decoded is reported at
/// its position and the rest of the range is still read.
async fn read(store: &Store, after: u64, up_to: u64) -> Result<Range, StoreError> {
    let mut events = Vec::new();
    let mut from = after;
    while from < up_to {
        match store.read_stored(from, up_to).await {
            Ok(batch) => {
                events.extend(batch.iter().map(|e| (e.position as u64, canonical(e))));
                break;
            }
            Err(StoreError::Corrupt { position, reason }) if (position as u64) > from => {
                let p = position as u64;
                let before = store.read_stored(from, p - 1).await?;
                events.extend(before.iter().map(|e| (e.position as u64, canonical(e))));
                events.push((p, Err(reason)));
                from = p;
            }
            Err(e) => return Err(e),
        }
    }
    let links = chain::links(store, after, up_to).await?;
    Ok(Range { events, links })
}

fn ranges(after: u64, end: u64) -> impl Iterator<Item = (u64, u64)> {
    (after..end)
        .step_by(RANGE as usize)
        .map(move |a| (a, (a + RANGE).min(end)))
}

/// How to verify.
#[derive(Default)]
pub struct VerifyOptions {
    /// Checkpoints kept outside the database: verification starts at the
    /// first (after checking its signature) and must meet every one.
    pub outside: Vec<Checkpoint>,
    /// The key checkpoints must be signed with; without one, the key the
    /// first signed checkpoint names (trust on first use).
    pub trusted: Option<PublicKey>,
}

/// Recomputes the chain from the log and checks every link and checkpoint.
/// `progress(done, total)` hears about every range read.
pub async fn verify(
    store: &Store,
    options: VerifyOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Report, VerifyError> {
    let head = store.head().await?;
    let (chain_end, _) = chain::last_link(store).await?;
    let mut outside = options.outside;
    outside.sort_by_key(|c| c.position);
    let (anchor, anchor_hash) = match outside.first() {
        None => (0, crate::GENESIS),
        Some(first) => {
            first
                .check_signature(options.trusted.as_ref())
                .map_err(|why| {
                    VerifyError::Anchor(format!(
                        "the checkpoint at {} to start from: {why}",
                        first.position
                    ))
                })?;
            (first.position, first.hash)
        }
    };
    // Checkpoints from outside win over the database's at the same position.
    let mut checkpoints = outside;
    checkpoints.extend(chain::checkpoints(store, anchor, u64::MAX).await?);
    checkpoints.sort_by_key(|c| c.position);
    let end = head.max(chain_end);
    let mut v = Verifier::new(anchor, anchor_hash, checkpoints, chain_end, options.trusted);
    let total = end.saturating_sub(anchor);
    // Each range is read and canonicalised on a task of its own (both
    // cores); the chain itself is then walked in order.
    let mut reads = futures_util::stream::iter(ranges(anchor, end))
        .map(|(a, b)| {
            let store = store.clone();
            async move {
                tokio::spawn(async move { read(&store, a, b).await.map(|r| (a, b, r)) })
                    .await
                    .map_err(|e| VerifyError::Reader(e.to_string()))?
                    .map_err(VerifyError::from)
            }
        })
        .buffered(PARALLEL);
    let mut last_event = anchor;
    while let Some((_, up_to, range)) = reads.try_next().await? {
        let mut events = range.events.into_iter().peekable();
        let mut links = range.links.into_iter().peekable();
        loop {
            let next = match (events.peek(), links.peek()) {
                (None, None) => break,
                (Some(e), None) => e.0,
                (None, Some(l)) => l.position,
                (Some(e), Some(l)) => e.0.min(l.position),
            };
            let event = events.next_if(|e| e.0 == next).map(|e| e.1);
            let link = links.next_if(|l| l.position == next);
            if event.is_some() {
                last_event = next;
            }
            v.step(
                next,
                event.as_ref().map(|r| r.as_deref().map_err(Clone::clone)),
                link.as_ref(),
            );
        }
        progress(up_to - anchor, total);
    }
    // Where the log ends: its last event read, or (none past the anchor)
    // its head, which may lie before a trusted anchor it should reach.
    Ok(v.finish(if last_event > anchor {
        last_event
    } else {
        head
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Anchor(String),
    #[error("a reader of the log failed: {0}")]
    Reader(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Range(String),
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("the event at {position} cannot be exported: {why}")]
    Unreadable { position: u64, why: String },
}

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exported {
    pub from: u64,
    pub to: u64,
    pub events: u64,
    pub checkpoints: u64,
}

/// Writes positions `from..=to` as a self-contained JSON-lines file: a
/// header (with the link the first event follows), one line per event with
/// its link, and the checkpoints from that link to `to`.
pub async fn export(
    store: &Store,
    from: u64,
    to: u64,
    out: &mut impl std::io::Write,
) -> Result<Exported, ExportError> {
    if from == 0 || from > to {
        return Err(ExportError::Range(format!(
            "--from {from} --to {to}: positions start at 1 and --from must not be after --to"
        )));
    }
    let (chain_end, _) = chain::last_link(store).await?;
    if to > chain_end {
        return Err(ExportError::Range(format!(
            "the chain reaches position {chain_end}: export up to it, or run `freshledger audit sync` first"
        )));
    }
    let (previous, previous_hash) = chain::link_before(store, from - 1).await?;
    let checkpoints = chain::checkpoints(store, previous.saturating_sub(1), to).await?;
    let header = Header {
        format: file::FORMAT.into(),
        from,
        to,
        previous,
        previous_hash,
        exported_at: chrono::Utc::now(),
    };
    writeln!(
        out,
        "{}",
        serde_json::to_string(&Line::Header(header)).expect("serialises")
    )?;
    let mut written = 0;
    for (a, b) in ranges(from - 1, to) {
        let events: Vec<StoredEvent> = store.read_stored(a, b).await?;
        let links = chain::links(store, a, b).await?;
        let mut links = links.into_iter().peekable();
        for e in &events {
            let p = e.position as u64;
            let link = links
                .find(|l| l.position == p)
                .ok_or_else(|| ExportError::Unreadable {
                    position: p,
                    why: "the chain has no link for it (run `freshledger audit verify`)".into(),
                })?;
            let line = Line::Event(EventLine {
                position: p,
                previous: link.previous,
                hash: link.hash,
                hashed: document(e),
            });
            writeln!(out, "{}", serde_json::to_string(&line).expect("serialises"))?;
            written += 1;
        }
    }
    for cp in &checkpoints {
        writeln!(
            out,
            "{}",
            serde_json::to_string(&Line::Checkpoint(cp.clone())).expect("serialises")
        )?;
    }
    out.flush()?;
    Ok(Exported {
        from,
        to,
        events: written,
        checkpoints: checkpoints.len() as u64,
    })
}
