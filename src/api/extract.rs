//! Extractors for the JSON API whose rejections answer like every other API error (a JSON
//! `{"error": …}` with 400), not with axum's plain text: clients and the OpenAPI document
//! see one error format.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::ApiError;

/// Declares each extractor as a wrapper of axum's extractor of the same name whose rejection
/// is a 400 [`ApiError`].
macro_rules! extractors {
    ($($(#[$doc:meta])* $name:ident<T: $($bound:path),+>;)+) => {$(
        $(#[$doc])*
        pub struct $name<T>(pub T);

        impl<S: Send + Sync, T: $($bound +)+> FromRequestParts<S> for $name<T> {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                axum::extract::$name::<T>::from_request_parts(parts, state)
                    .await
                    .map(|extracted| $name(extracted.0))
                    .map_err(|e| ApiError::BadRequest(e.body_text()))
            }
        }
    )+};
}

extractors! {
    /// The query string as `T`.
    Query<T: DeserializeOwned>;
    /// The path's parameters as `T`.
    Path<T: DeserializeOwned, Send>;
}
