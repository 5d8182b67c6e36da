//! The names of the step kinds in a journey file.

/// The step kinds, each the key that names it in a step; matched exhaustively below, so a new
/// kind cannot be parsed as another by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KindKey {
    Http,
    Websocket,
    Tcp,
    Dns,
    Tls,
    Wait,
}

impl KindKey {
    pub(super) const ALL: [KindKey; 6] = [
        KindKey::Http,
        KindKey::Websocket,
        KindKey::Tcp,
        KindKey::Dns,
        KindKey::Tls,
        KindKey::Wait,
    ];

    pub(super) fn key(self) -> &'static str {
        match self {
            KindKey::Http => "http",
            KindKey::Websocket => "websocket",
            KindKey::Tcp => "tcp",
            KindKey::Dns => "dns",
            KindKey::Tls => "tls",
            KindKey::Wait => "wait",
        }
    }
}
