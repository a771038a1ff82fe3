//! The Kafka relay in the composition root: its adapter to the command
//! API's integration reports, and the `freshledger relay` commands.

use std::sync::Arc;

use command_api::integrations::{DeadLetterInfo, Integration, IntegrationStatus};
use relay::{dead_letters, Relay};
use store::Store;

use crate::app::{store_err, AppError};
use crate::cli::RelayCommand;

/// The relay as `/readyz` and `/api/v1/log` show it.
pub(crate) struct KafkaIntegration(pub(crate) Relay);

#[async_trait::async_trait]
impl Integration for KafkaIntegration {
    async fn status(&self) -> IntegrationStatus {
        match self.0.report().await {
            Ok(r) => IntegrationStatus {
                name: "kafka".into(),
                state: r.state.as_str().into(),
                healthy: r.healthy,
                problem: r.problem,
                since: r.since,
                position: Some(r.position),
                lag: Some(r.lag),
                dead_letters: r.dead_letters.into_iter().map(dead_letter).collect(),
            },
            Err(e) => {
                IntegrationStatus::unreadable("kafka", format!("reading the relay's state: {e}"))
            }
        }
    }
}

fn dead_letter(d: dead_letters::DeadLetter) -> DeadLetterInfo {
    DeadLetterInfo {
        global_position: d.global_position,
        event_id: d.event_id,
        stream_type: d.stream_type,
        stream_id: d.stream_id,
        event_type: d.event_type,
        status: d.status,
        error: d.error,
        failed_at: d.failed_at,
    }
}

pub(crate) fn integration(relay: &Relay) -> Arc<dyn Integration> {
    Arc::new(KafkaIntegration(relay.clone()))
}

/// `freshledger relay ...`: works on the database, with or without a
/// running server (which picks up a retry or skip within a second).
pub(crate) async fn command(store: &Store, command: &RelayCommand) -> Result<(), AppError> {
    dead_letters::ensure_tables(store)
        .await
        .map_err(store_err("preparing the relay's table"))?;
    let show = |d: &dead_letters::DeadLetter| {
        format!(
            "{:>10}  {:<9} {}/{} {} (event {}){}",
            d.global_position,
            d.status,
            d.stream_type,
            d.stream_id,
            d.event_type,
            d.event_id,
            d.error
                .as_ref()
                .map(|e| format!("\n            {e}"))
                .unwrap_or_default()
        )
    };
    let action = |r: Result<dead_letters::DeadLetter, dead_letters::ActionError>| match r {
        Ok(d) => Ok(d),
        Err(dead_letters::ActionError::Store(e)) => Err(AppError::Store {
            doing: "updating the dead letter",
            source: e,
        }),
        Err(e) => Err(AppError::Config(e.to_string())),
    };
    match command {
        RelayCommand::Status => {
            store
                .ensure_subscription_exists(relay::SUBSCRIPTION)
                .await
                .map_err(store_err("reading the relay's checkpoint"))?;
            let position = store
                .subscription(relay::SUBSCRIPTION)
                .await
                .map_err(store_err("reading the relay's checkpoint"))?
                .position;
            let head = store.head().await.map_err(store_err("reading the log"))?;
            let pending = dead_letters::list(store, false)
                .await
                .map_err(store_err("reading dead letters"))?;
            say!(
                "checkpoint {position}, head {head}, lag {} events, {} dead letters holding streams back",
                head.saturating_sub(position),
                pending.len()
            );
            for d in &pending {
                say!("{}", show(d));
            }
        }
        RelayCommand::DeadLetters { all } => {
            let rows = dead_letters::list(store, *all)
                .await
                .map_err(store_err("reading dead letters"))?;
            if rows.is_empty() {
                say!("no dead letters");
            }
            for d in &rows {
                say!("{}", show(d));
            }
        }
        RelayCommand::Retry { position } => {
            let d = action(dead_letters::retry(store, *position).await)?;
            say!(
                "position {position} ({}/{} {}) will be sent again, then the events waiting behind it",
                d.stream_type, d.stream_id, d.event_type
            );
        }
        RelayCommand::Skip { position } => {
            let d = action(dead_letters::skip(store, *position).await)?;
            say!(
                "position {position} ({}/{} {}) skipped; the events waiting behind it will be sent",
                d.stream_type,
                d.stream_id,
                d.event_type
            );
        }
    }
    Ok(())
}
