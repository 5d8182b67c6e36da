//! Enums stored as text: each one's column values, written once here, with sqlx `Type`,
//! `Encode` and `Decode` for both dialects, so statements bind the enum itself and rows decode
//! into it (`#[derive(sqlx::FromRow)]` row structs).
//!
//! Why a table here rather than serde: the stored words are an on-disk format that must never
//! change by accident, and decoding a word nobody knows must be an error
//! ([`StoreError::Corrupt`](super::StoreError::Corrupt)), not a panic. The words are the
//! enums' serde names, which a test checks, so the columns hold exactly what they always held.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use super::alerts::{DeliveryOutcome, NotificationStatus};
use crate::alert::{EventKind, IncidentState, NotificationKind, Severity};
use crate::baseline::DetectorKind;
use crate::run::{Outcome, StepStatus};
use crate::step::FailureClass;

/// An enum with one stored word per variant.
pub(crate) trait StoredText: Sized + Copy + 'static {
    /// Every variant, in declaration order (for the tests).
    #[cfg(test)]
    const ALL: &'static [Self];
    /// What the column holds for `self`.
    fn text(self) -> &'static str;
    /// The variant stored as `text`, if any.
    fn from_text(text: &str) -> Option<Self>;
}

/// Implements [`StoredText`] and the sqlx traits for a unit enum, from its variant ↔ word
/// table. The `match` in `text` is exhaustive, so a new variant does not compile until it has
/// its word.
macro_rules! text_enum {
    ($ty:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl StoredText for $ty {
            #[cfg(test)]
            const ALL: &'static [Self] = &[$($ty::$variant),+];

            fn text(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }

            fn from_text(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }

        impl<DB: Database> Type<DB> for $ty
        where
            str: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $ty
        where
            &'static str: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer,
            ) -> Result<IsNull, BoxDynError> {
                Encode::<DB>::encode(self.text(), buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $ty
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&'r str as Decode<'r, DB>>::decode(value)?;
                $ty::from_text(text).ok_or_else(|| {
                    format!(concat!("`{}` is not a known ", stringify!($ty)), text).into()
                })
            }
        }
    };
}

text_enum!(Outcome {
    Passed = "passed",
    Failed = "failed",
    Error = "error",
});

text_enum!(StepStatus {
    Passed = "passed",
    Failed = "failed",
    Skipped = "skipped",
    Error = "error",
});

text_enum!(FailureClass {
    Timeout = "timeout",
    Dns = "dns",
    Connect = "connect",
    Tls = "tls",
    HttpStatus = "http_status",
    Condition = "condition",
    Extraction = "extraction",
    BodyTooLarge = "body_too_large",
    TooManyRedirects = "too_many_redirects",
    Protocol = "protocol",
    Handshake = "handshake",
    ClosedByPeer = "closed_by_peer",
    NoMatchingMessage = "no_matching_message",
    UnexpectedMessage = "unexpected_message",
    MessageTooLarge = "message_too_large",
    Template = "template",
    Internal = "internal",
});

text_enum!(Severity {
    Degraded = "degraded",
    Failure = "failure",
});

text_enum!(IncidentState {
    Open = "open",
    Acknowledged = "acknowledged",
    Resolved = "resolved",
});

text_enum!(NotificationKind {
    Triggered = "triggered",
    Escalated = "escalated",
    Reopened = "reopened",
    Acknowledged = "acknowledged",
    Resolved = "resolved",
    Reminder = "reminder",
    Flapping = "flapping",
});

text_enum!(EventKind {
    Triggered = "triggered",
    Escalated = "escalated",
    Reopened = "reopened",
    Acknowledged = "acknowledged",
    Resolved = "resolved",
    Reminder = "reminder",
    Flapping = "flapping",
    Muted = "muted",
});

text_enum!(NotificationStatus {
    Pending = "pending",
    Delivered = "delivered",
    Failed = "failed",
    Muted = "muted",
});

text_enum!(DeliveryOutcome {
    Delivered = "delivered",
    Retry = "retry",
    Failed = "failed",
});

text_enum!(DetectorKind {
    Latency = "latency",
    FailureRate = "failure_rate",
});

#[cfg(test)]
mod tests {
    use super::*;

    /// Each stored word is the variant's serde name (what `name_of` used to store) and reads
    /// back as the same variant.
    fn same_as_serde<T: StoredText + serde::Serialize + PartialEq + std::fmt::Debug>() {
        for &v in T::ALL {
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::String(v.text().to_string()),
                "{v:?}"
            );
            assert_eq!(T::from_text(v.text()), Some(v));
        }
        assert_eq!(T::from_text("no such word"), None);
    }

    #[test]
    fn stored_words_are_the_serde_names() {
        same_as_serde::<Outcome>();
        same_as_serde::<StepStatus>();
        same_as_serde::<FailureClass>();
        same_as_serde::<Severity>();
        same_as_serde::<IncidentState>();
        same_as_serde::<NotificationKind>();
        same_as_serde::<EventKind>();
        same_as_serde::<NotificationStatus>();
        same_as_serde::<DeliveryOutcome>();
        same_as_serde::<DetectorKind>();
    }

    /// The words the types themselves print (`as_str`) are the stored ones.
    #[test]
    fn stored_words_match_as_str() {
        for &v in Severity::ALL {
            assert_eq!(v.as_str(), v.text());
        }
        for &v in IncidentState::ALL {
            assert_eq!(v.as_str(), v.text());
        }
        for &v in NotificationKind::ALL {
            assert_eq!(v.as_str(), v.text());
            assert_eq!(EventKind::from(v).text(), v.text());
        }
        for &v in EventKind::ALL {
            assert_eq!(v.as_str(), v.text());
        }
        for &v in NotificationStatus::ALL {
            assert_eq!(v.as_str(), v.text());
        }
        for &v in DetectorKind::ALL {
            assert_eq!(v.as_str(), v.text());
        }
    }
}
