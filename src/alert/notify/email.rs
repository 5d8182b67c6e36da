//! Placeholder (notifier helper replaces this file).

use super::{BoxFuture, Delivered, DeliveryError, Notifier};
use crate::alert::Notification;
use crate::alert::config::EmailConfig;

pub struct Email;

impl Email {
    pub fn new(config: &EmailConfig) -> Email {
        let _ = config;
        Email
    }
}

impl Notifier for Email {
    fn send<'a>(&'a self, n: &'a Notification) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        let _ = n;
        todo!()
    }
}
