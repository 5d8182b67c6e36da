//! The journeys being scheduled and the problems of the last load of the journeys directory:
//! written by the reloader, read by the analysis, the cluster's beats and the API.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::journey::Journey;
use crate::journey::parse::Diagnostic;

/// The journeys being scheduled, and the problems of the last load of the journeys directory.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub journeys: BTreeMap<String, Arc<Journey>>,
    pub problems: Vec<Diagnostic>,
}
