//! Enums with one stable word per variant: what the API, the store, notifications and metrics
//! labels write for them. The lowest layer with `format`: it uses no other module.
//!
//! Why one table per enum, declared next to the enum: the words are an on-disk and wire format
//! that must never change by accident, so they are written once (`words!`) and everything
//! else (`as_str`, reading a stored word back, the store's column codec) derives from that
//! table. The words are also the enums' serde names, which the store's tests check.

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

/// Implements [`Words`] and inherent `as_str` and `from_word` for a unit enum from its variant → word
/// table. The `match` is exhaustive, so a new variant does not compile until it has its word.
macro_rules! words {
    ($ty:ident { $($variant:ident = $word:literal),+ $(,)? }) => {
        impl $crate::words::Words for $ty {
            const ALL: &'static [Self] = &[$($ty::$variant),+];

            fn word(self) -> &'static str {
                match self {
                    $($ty::$variant => $word),+
                }
            }
        }

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

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Light {
        Red,
        Green,
    }
    words!(Light {
        Red = "red",
        Green = "green"
    });

    #[test]
    fn words_read_back_as_their_variant() {
        assert_eq!(Light::Red.as_str(), "red");
        assert_eq!(Light::ALL, &[Light::Red, Light::Green]);
        assert_eq!(Light::from_word("green"), Some(Light::Green));
        assert_eq!(Light::from_word("Green"), None);
        assert_eq!(Light::from_word(""), None);
    }
}
