//! Placeholder (notifier helper replaces this file).

use super::{BoxFuture, Delivered, DeliveryError, Notifier};
use crate::alert::Notification;
use crate::alert::config::SlackConfig;

pub struct Slack;

impl Slack {
    pub fn new(config: &SlackConfig, client: reqwest::Client) -> Slack {
        let _ = (config, client);
        Slack
    }
}

impl Notifier for Slack {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        let _ = n;
        todo!()
    }
}
