//! Messages to account holders (email verification, password reset).
//! Until a notification service exists they are written as RFC 5322
//! files, one per message, into the configured directory (like a mail
//! catcher); without one they are not sent, and the log says so without
//! the message's secret.

use std::path::PathBuf;

use chrono::Utc;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub(crate) struct Mailer {
    dir: Option<PathBuf>,
}

impl Mailer {
    pub(crate) fn new(dir: Option<PathBuf>) -> Mailer {
        Mailer { dir }
    }

    pub(crate) async fn send(&self, to: &str, subject: &str, body: &str) {
        let Some(dir) = &self.dir else {
            tracing::warn!(
                subject,
                "no mail directory configured: a message to an account holder was not sent"
            );
            return;
        };
        let id = Uuid::now_v7();
        let text = format!(
            "Message-ID: <{id}@freshledger>\r\nDate: {}\r\nFrom: Freshledger <no-reply@freshledger.local>\r\nTo: <{to}>\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
            Utc::now().to_rfc2822()
        );
        let result = async {
            tokio::fs::create_dir_all(dir).await?;
            // Written under a temporary name and renamed: a reader never
            // sees half a message.
            let tmp = dir.join(format!(".{id}.tmp"));
            tokio::fs::write(&tmp, text).await?;
            tokio::fs::rename(&tmp, dir.join(format!("{id}.eml"))).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, dir = %dir.display(), subject, "a message to an account holder could not be written");
        }
    }
}
