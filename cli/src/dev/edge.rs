//! `tern dev`'s edge, in a tokio runtime of its own: an edge spawns tasks for its listeners, links and
//! sessions that run as long as its process, so stopping it in-process for `tern dev --restart` means
//! draining it (clients told to go, the access layer's kept-alive connections closed) and then
//! dropping that runtime, which ends every task and closes every socket the edge held, as an exit does.

use anyhow::Context;
use std::time::Duration;
use tern_edge::{EdgeConfig, EdgeHandle};

/// How long the edge's remaining tasks get to end once it is drained.
const END_TASKS_FOR: Duration = Duration::from_secs(2);

pub struct DevEdge {
    pub handle: EdgeHandle,
    config: EdgeConfig,
    runtime: Option<tokio::runtime::Runtime>,
}

impl DevEdge {
    pub async fn start(config: EdgeConfig) -> anyhow::Result<DevEdge> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tern-edge")
            .enable_all()
            .build()
            .context("the edge's runtime")?;
        let cfg = config.clone();
        let handle = runtime.spawn(tern_edge::start(cfg)).await.context("starting edge")?.context("starting edge")?;
        Ok(DevEdge { handle, config, runtime: Some(runtime) })
    }

    /// Waits up to `within` for the edge's links to the core; whether they are up.
    pub async fn linked(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while !self.handle.edge.link.is_up() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.handle.edge.link.is_up()
    }

    /// Drains the edge, ends it, and starts it again on the same addresses once they are free.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let edge = self.handle.edge.clone();
        if let Some(rt) = &self.runtime {
            rt.spawn(async move { edge.drain().await }).await.context("draining the edge")?;
        }
        if let Some(rt) = self.runtime.take() {
            tokio::task::spawn_blocking(move || rt.shutdown_timeout(END_TASKS_FOR)).await?;
        }
        // The client listeners were dropped with their tasks; a socket still closing may hold a port
        // for a moment.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match DevEdge::start(self.config.clone()).await {
                Ok(again) => {
                    *self = again;
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "edge not startable yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for DevEdge {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
