//! Process limits a server checks at start: every client connection costs a file descriptor.

/// Descriptors kept for listeners, links, RocksDB files and logs on top of the connections.
pub const FD_RESERVE: u64 = 1024;

/// Raises the soft open-files limit to the hard limit and returns it. Logs a warning naming the
/// shortfall when it is below `needed` (the hard limit can only be raised by root with
/// CAP_SYS_RESOURCE; see docs/TUNING.md).
pub fn raise_fd_limit(needed: u64, what: &str) -> u64 {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit (RLIMIT_NOFILE)");
            return 0;
        }
    };
    if limit < needed {
        tracing::warn!(
            limit,
            needed,
            "open-files limit (RLIMIT_NOFILE) is {limit} but {what} needs {needed}: connections past about {} \
             will be refused; raise the hard limit (docs/TUNING.md)",
            limit.saturating_sub(FD_RESERVE)
        );
    } else {
        tracing::info!(limit, needed, "open-files limit");
    }
    limit
}

/// This process's resident memory in bytes (Linux), for per-connection memory figures.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
