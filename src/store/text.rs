//! Enums stored as text: sqlx `Type`, `Encode` and `Decode` for both dialects, so statements
//! bind the enum itself and rows decode into it (`#[derive(sqlx::FromRow)]` row structs).
//!
//! A column holds the variant's word from its [`words!`](crate::words) table (declared next to
//! the enum), not serde's output: the stored words are an on-disk format that must never change
//! by accident, and decoding a word nobody knows must be an error
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
use crate::words::Words;

/// Implements the sqlx traits for enums with [`Words`]: a column holds the variant's word, and a
/// word nobody knows decodes to an error naming it.
macro_rules! stored_as_words {
    ($($ty:ident),+ $(,)?) => {$(
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
                Encode::<DB>::encode(self.word(), buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $ty
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&'r str as Decode<'r, DB>>::decode(value)?;
                $ty::from_word(text).ok_or_else(|| {
                    format!(concat!("`{}` is not a known ", stringify!($ty)), text).into()
                })
            }
        }
    )+};
}

stored_as_words!(
    Outcome,
    StepStatus,
    FailureClass,
    Severity,
    IncidentState,
    NotificationKind,
    EventKind,
    NotificationStatus,
    DeliveryOutcome,
    DetectorKind,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Each stored word is the variant's serde name (what `name_of` used to store) and reads
    /// back as the same variant.
    fn same_as_serde<T: Words + serde::Serialize + PartialEq + std::fmt::Debug>() {
        for &v in T::ALL {
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::String(v.word().to_string()),
                "{v:?}"
            );
            assert_eq!(T::from_word(v.word()), Some(v));
        }
        assert_eq!(T::from_word("no such word"), None);
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

    /// An event kind for a notification kind has the same word.
    #[test]
    fn event_kinds_of_notifications_share_their_words() {
        for &v in NotificationKind::ALL {
            assert_eq!(EventKind::from(v).word(), v.word());
        }
    }
}
