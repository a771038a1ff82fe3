//! The audit chain in the composition root: its adapter to the command
//! API's integration reports, and the `freshledger audit` commands.

use std::io::Write;
use std::sync::Arc;

use audit::online::{self, VerifyOptions};
use audit::{Audit, Checkpoint, PublicKey, Report};
use command_api::integrations::{Integration, IntegrationStatus};
use store::Store;

use crate::app::{store_err, AppError};
use crate::cli::AuditCommand;

/// The chain keeper as `/readyz` and `/api/v1/log` show it.
struct AuditIntegration(Audit);

#[async_trait::async_trait]
impl Integration for AuditIntegration {
    async fn status(&self) -> IntegrationStatus {
        let r = self.0.report().await;
        IntegrationStatus {
            name: "audit".into(),
            state: r.state.as_str().into(),
            healthy: r.healthy,
            problem: r.problem,
            since: r.since,
            position: Some(r.position),
            lag: Some(r.lag),
            dead_letters: Vec::new(),
        }
    }
}

pub(crate) fn integration(audit: &Audit) -> Arc<dyn Integration> {
    Arc::new(AuditIntegration(audit.clone()))
}

fn failed(doing: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Config(format!("{doing}: {e}"))
}

fn read_file(path: &std::path::Path) -> Result<String, AppError> {
    std::fs::read_to_string(path).map_err(|source| AppError::Io {
        doing: format!("reading {}", path.display()),
        source,
    })
}

/// The key to trust: the one given, else the configured signing key's.
fn trusted(
    given: &Option<std::path::PathBuf>,
    audit: &Audit,
) -> Result<Option<PublicKey>, AppError> {
    match given {
        Some(path) => PublicKey::decode(&read_file(path)?)
            .map(Some)
            .map_err(|e| AppError::Config(format!("--public-key {}: {e}", path.display()))),
        None => Ok(audit.public_key()),
    }
}

/// Prints a verification report; `Err` (exit status 1) when it found anything.
fn show(report: &Report, json: bool, what: &str) -> Result<(), AppError> {
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(report).expect("serialises")
        );
    } else {
        say!(
            "{what}: {} events in positions {}..={}, {} checkpoints checked ({} unsigned){}",
            report.events,
            report.anchor + 1,
            report.end,
            report.checkpoints,
            report.unsigned_checkpoints,
            report
                .key
                .as_ref()
                .map(|k| format!(", signed by key {k}"))
                .unwrap_or_default()
        );
        match report.last_good_checkpoint {
            Some(c) if c < report.end => say!(
                "positions {}..={} are chained but not yet covered by a signed checkpoint",
                c + 1,
                report.end
            ),
            None if report.end > report.anchor => say!(
                "no signed checkpoint covers these events: the chain shows they agree with one another, not that they are the ones signed"
            ),
            _ => {}
        }
        if report.unchained > 0 {
            say!("{} events at the end are not chained yet (the keeper is behind; `freshledger audit sync`)", report.unchained);
        }
        for f in report.findings.iter().take(20) {
            say!("  {}", f.detail);
        }
        if report.findings.len() > 20 || report.more_findings > 0 {
            say!(
                "  ... and {} more",
                report.findings.len().saturating_sub(20) as u64 + report.more_findings
            );
        }
    }
    match report.first() {
        None => {
            if !json {
                say!("OK: the history verifies");
            }
            Ok(())
        }
        Some(f) => Err(AppError::Config(format!(
            "verification FAILED: the first bad position is {}: {}",
            f.position, f.detail
        ))),
    }
}

/// `freshledger audit verify --file`: no database at all.
pub(crate) fn verify_file(
    file: &std::path::Path,
    public_key: &Option<std::path::PathBuf>,
    json: bool,
) -> Result<(), AppError> {
    let trusted = match public_key {
        Some(p) => Some(
            PublicKey::decode(&read_file(p)?)
                .map_err(|e| AppError::Config(format!("--public-key {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let input = std::fs::File::open(file).map_err(|source| AppError::Io {
        doing: format!("opening {}", file.display()),
        source,
    })?;
    let report = audit::file::verify(std::io::BufReader::new(input), trusted)
        .map_err(|e| failed(&file.display().to_string(), e))?;
    show(&report, json, &format!("export {}", file.display()))
}

/// `freshledger audit ...` against the database.
pub(crate) async fn command(
    store: &Store,
    audit: &Audit,
    command: &AuditCommand,
) -> Result<(), AppError> {
    match command {
        AuditCommand::Status => {
            let r = audit.report().await;
            say!("chained up to: {}", r.position);
            say!("log head:      {}", r.head);
            say!("lag:           {}", r.lag);
            match audit::chain::last_checkpoint(store)
                .await
                .map_err(store_err("reading checkpoints"))?
            {
                Some(cp) => say!(
                    "last checkpoint: position {} at {} ({})",
                    cp.position,
                    cp.signed_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    if cp.signature.is_some() {
                        "signed"
                    } else {
                        "unsigned"
                    }
                ),
                None => say!("last checkpoint: none yet"),
            }
            match audit.public_key() {
                Some(k) => say!("signing key:   {}", k.encoded()),
                None => say!("signing key:   none configured (checkpoints are unsigned)"),
            }
        }
        AuditCommand::Sync => {
            if !audit
                .sync()
                .await
                .map_err(|e| failed("keeping the chain", e))?
            {
                return Err(AppError::Config(
                    "a running server keeps the chain (it holds the audit-chain lease): nothing to do here".into(),
                ));
            }
            let r = audit.report().await;
            say!("chained up to {} (log head {})", r.position, r.head);
        }
        AuditCommand::Verify {
            from_checkpoint,
            public_key,
            file,
            json,
        } => {
            if let Some(file) = file {
                return verify_file(file, public_key, *json);
            }
            let outside = match from_checkpoint {
                None => Vec::new(),
                Some(path) => {
                    let text = read_file(path)?;
                    let mut cps = Vec::new();
                    for (i, line) in text
                        .lines()
                        .enumerate()
                        .filter(|(_, l)| !l.trim().is_empty())
                    {
                        let cp: Checkpoint = serde_json::from_str(line).map_err(|e| {
                            AppError::Config(format!(
                                "{} line {}: not a checkpoint: {e}",
                                path.display(),
                                i + 1
                            ))
                        })?;
                        cps.push(cp);
                    }
                    if cps.is_empty() {
                        return Err(AppError::Config(format!(
                            "{} holds no checkpoint",
                            path.display()
                        )));
                    }
                    cps
                }
            };
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "verifying [{bar:40}] {pos}/{len} positions ({per_sec}, {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            if *json {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let options = VerifyOptions {
                outside,
                trusted: trusted(public_key, audit)?,
            };
            let report = online::verify(store, options, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await
            .map_err(|e| failed("verifying", e))?;
            bar.finish_and_clear();
            show(&report, *json, "verified")?;
        }
        AuditCommand::Export { from, to, output } => {
            let summary = match output {
                Some(path) => {
                    let file = std::fs::File::create(path).map_err(|source| AppError::Io {
                        doing: format!("creating {}", path.display()),
                        source,
                    })?;
                    let mut out = std::io::BufWriter::new(file);
                    online::export(store, *from, *to, &mut out).await
                }
                None => {
                    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                    let r = online::export(store, *from, *to, &mut out).await;
                    let _ = out.flush();
                    r
                }
            }
            .map_err(|e| failed("exporting", e))?;
            eprintln!(
                "exported positions {}..={}: {} events, {} checkpoints",
                summary.from, summary.to, summary.events, summary.checkpoints
            );
        }
        AuditCommand::Checkpoints { after } => {
            for cp in audit::chain::checkpoints(store, *after, u64::MAX)
                .await
                .map_err(store_err("reading checkpoints"))?
            {
                say!("{}", cp.to_line());
            }
        }
        AuditCommand::PublicKey => match audit.public_key() {
            Some(k) => say!("{}", k.to_pem().trim_end()),
            None => return Err(AppError::Config(
                "no audit signing key is configured (--audit-key-file or FRESHLEDGER_AUDIT_KEY)"
                    .into(),
            )),
        },
        AuditCommand::Recall {
            batch,
            supplier,
            from,
            to,
            format,
        } => {
            let from_what = match (batch, supplier, from, to) {
                (Some(b), _, _, _) => audit::queries::RecallFrom::Batch(b.clone()),
                (None, Some(s), Some(f), Some(t)) => audit::queries::RecallFrom::Supplier {
                    supplier_id: s.clone(),
                    from: *f,
                    to: *t,
                },
                _ => {
                    return Err(AppError::Config(
                        "give --batch, or --supplier with --from and --to".into(),
                    ))
                }
            };
            let recall = audit::queries::recall(store, &from_what)
                .await
                .map_err(|e| failed("recall", e))?;
            if format == "json" {
                say!(
                    "{}",
                    serde_json::to_string_pretty(&recall).expect("serialises")
                );
            } else {
                say!("{}", audit::queries::recall_csv(&recall).trim_end());
            }
        }
    }
    Ok(())
}
