//! The built-in `log` channel: notifications become log lines (the demo's default).

use super::{BoxFuture, Delivered, DeliveryError, Notifier};
use crate::alert::Notification;

pub struct Log;

impl Notifier for Log {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        Box::pin(async move {
            tracing::warn!(
                channel = %n.channel,
                notification = %n.id,
                kind = n.kind.as_str(),
                incident = n.incident.id,
                journey = %n.incident.journey,
                severity = n.incident.severity.as_str(),
                runbook = n.incident.runbook.as_deref().unwrap_or("-"),
                owner = n.incident.owner.as_deref().unwrap_or("-"),
                "{}",
                n.summary()
            );
            Ok(Delivered { status: None })
        })
    }
}
