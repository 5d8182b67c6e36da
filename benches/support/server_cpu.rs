//! The PostgreSQL server's CPU time, for benchmarks that run against a local server: read from
//! `/proc`, so it works only when the server runs on this machine.

use std::time::Duration;

/// CPU time so far of the server `admin` is connected to: the postmaster with its waited-for
/// children, and the live ones.
pub async fn postgres_server_cpu(admin: &mut sqlx::PgConnection) -> Option<Duration> {
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(admin)
        .await
        .ok()?;
    // /proc/<pid>/stat after the `(comm)`: state ppid … utime(12) stime(13) cutime(14)
    // cstime(15), in clock ticks.
    let stat = |pid: &str| -> Option<Vec<i64>> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 2..];
        Some(
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect(),
        )
    };
    let postmaster = stat(&backend.to_string())?[1];
    let f = stat(&postmaster.to_string())?;
    let mut ticks = f[11] + f[12] + f[13] + f[14];
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        if let Some(f) = name.to_str().and_then(stat)
            && f.len() > 12
            && f[1] == postmaster
        {
            ticks += f[11] + f[12];
        }
    }
    // SAFETY: sysconf has no side effect.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
}
