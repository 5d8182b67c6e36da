//! Enums with one stable word per variant: what the API, the store, notifications, traces and
//! metrics labels write for them. The lowest layer with `format`: it uses no other module.
//!
//! Why derived rather than tabled: the words are the variants' snake_case names, exactly as
//! serde writes them, so they are derived the same way (strum's `IntoStaticStr` and
//! `VariantArray`, with `serialize_all = "snake_case"`) instead of written out again, and
//! everything else (`as_str`, reading a stored word back, the store's column codec) comes from
//! [`Words`]. A test in `store/text.rs` checks every stored enum's words against its serde names.

/// An enum whose variants each have one stable word.
pub trait Words: Sized + Copy + 'static {
    /// Every variant, in declaration order.
    const ALL: &'static [Self];

    /// The variant's word.
    fn word(self) -> &'static str;

    /// The variant whose word is `word`, if any.
    fn from_word(word: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.word() == word)
    }
}

impl<T> Words for T
where
    T: strum::VariantArray + Copy + 'static,
    &'static str: From<T>,
{
    const ALL: &'static [Self] = T::VARIANTS;

    fn word(self) -> &'static str {
        self.into()
    }
}

/// Declares an enum whose words are its variants' snake_case names: the enum as written, plus
/// strum's derives and inherent `as_str` and `from_word` (so callers need no import).
macro_rules! words {
    ($(#[$meta:meta])* $vis:vis enum $ty:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(strum::IntoStaticStr, strum::VariantArray)]
        #[strum(serialize_all = "snake_case")]
        $vis enum $ty { $($body)* }

        impl $ty {
            /// The variant's stable word (its serde name).
            pub fn as_str(self) -> &'static str {
                $crate::words::Words::word(self)
            }

            /// The variant whose word is `word`, if any.
            pub fn from_word(word: &str) -> Option<Self> {
                <Self as $crate::words::Words>::from_word(word)
            }
        }
    };
}
pub(crate) use words;

#[cfg(test)]
mod tests {
    use super::*;

    words! {
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Light {
            Red,
            DeepGreen,
        }
    }

    #[test]
    fn words_are_snake_case_names_and_read_back_as_their_variant() {
        assert_eq!(Light::DeepGreen.as_str(), "deep_green");
        assert_eq!(Light::ALL, &[Light::Red, Light::DeepGreen]);
        assert_eq!(Light::from_word("red"), Some(Light::Red));
        assert_eq!(Light::from_word("deep_green"), Some(Light::DeepGreen));
        assert_eq!(Light::from_word("DeepGreen"), None);
        assert_eq!(Light::from_word(""), None);
    }
}
