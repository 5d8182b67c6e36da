//! The internal dashboard under `/app` (login required, see [`super::auth`]), one file per area:
//! `overview` (every journey), `journeys` (a journey, a run's waterfall, the dependency
//! map), `incidents` (list, detail, acknowledge and resolve), and the node list. Pages are server-rendered from
//! `ui/templates`; forms post back with the session's CSRF token.

mod incidents;
pub(crate) mod journeys;
pub(crate) mod overview;
#[cfg(test)]
mod tests;

use axum::Router;
use axum::routing::{get, post};
use minijinja::{Value, context};

use super::AppState;
use super::auth::{self, SignedIn};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/app", get(overview::overview))
        .route("/app/login", get(auth::login_page).post(auth::login))
        .route("/app/logout", post(auth::logout))
        .route("/app/runs/{id}", get(journeys::run))
        .route("/app/journeys/{name}", get(journeys::journey))
        .route("/app/dependencies", get(journeys::dependencies))
        .route("/app/incidents", get(incidents::list))
        .route("/app/incidents/{id}", get(incidents::one))
        .route("/app/incidents/{id}/{action}", post(incidents::command))
        .route("/app/nodes", get(nodes))
        .with_state(state)
}

/// `/app/nodes`: the nodes sharing the database, the leader, and any version skew.
async fn nodes(
    axum::extract::State(state): axum::extract::State<AppState>,
    user: SignedIn,
) -> Result<axum::response::Response, super::ApiError> {
    let list = super::nodes::node_list(&state).await?;
    super::ui::page(
        "nodes.html",
        context! {
            ..base(&state, &user, "Nodes"),
            ..context! { list => Value::from_serialize(&list) }
        },
    )
}

/// The context every dashboard page shares: the site, the user (for the CSRF token of the
/// logout form) and the state words.
pub(super) fn base(state: &AppState, user: &SignedIn, title: &str) -> Value {
    let (icons, labels) = super::status::state_words();
    context! {
        site => Value::from_serialize(&state.config.status_page),
        user => context! { username => user.username.clone(), csrf_token => user.csrf_token.clone() },
        title,
        icons,
        labels,
    }
}
