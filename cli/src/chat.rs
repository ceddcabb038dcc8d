//! `tern chat`: a terminal client. Each line typed is a text message; messages received are printed.

use anyhow::bail;
use clap::Args;
use std::time::Duration;
use tern_shared::channel::kind;
use tern_shared::client::{Client, ClientOptions, Incoming};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Args)]
pub struct ChatArgs {
    /// Edge address: host:port for TCP or ws://host:port for WebSocket.
    #[arg(long, default_value = "127.0.0.1:5100")]
    addr: String,
    #[arg(long)]
    uid: String,
    #[arg(long)]
    token: String,
    /// Chat with this user.
    #[arg(long, conflicts_with = "group")]
    to: Option<String>,
    /// Chat in this group.
    #[arg(long)]
    group: Option<String>,
    /// 0 app, 1 web, 2 pc.
    #[arg(long, default_value_t = 0)]
    device_flag: u8,
}

/// The text of a payload the SDKs understand (`{"type":1,"content":..}`), else the raw bytes.
pub fn show_payload(payload: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) if v.get("type").and_then(|t| t.as_i64()) == Some(1) => {
            v.get("content").and_then(|c| c.as_str()).unwrap_or_default().to_string()
        }
        _ => String::from_utf8_lossy(payload).into_owned(),
    }
}

pub async fn run(a: ChatArgs) -> anyhow::Result<()> {
    let (channel, channel_type) = match (&a.to, &a.group) {
        (Some(to), None) => (to.clone(), kind::PERSON),
        (None, Some(g)) => (g.clone(), kind::GROUP),
        _ => bail!("say who to talk to: --to <uid> or --group <group id>"),
    };
    let mut opts = ClientOptions::new(a.addr.clone(), a.uid.clone(), a.token.clone());
    opts.device_flag = a.device_flag;
    let mut client = Client::connect(opts).await?;
    eprintln!("connected to {} as {}; type a message and press Enter (Ctrl-D quits)", a.addr, a.uid);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut ping = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                if line.trim().is_empty() {
                    continue;
                }
                let ack = client.send_text(&channel, channel_type, &line).await?;
                if ack.reason_code == 1 {
                    eprintln!("  (stored as #{} in {})", ack.message_seq, channel);
                } else {
                    eprintln!("  (refused: reason code {})", ack.reason_code);
                }
            }
            incoming = client.recv() => match incoming {
                Some(Incoming::Message(m)) => println!("[{}] {}: {}", m.channel_id, m.from_uid, show_payload(&m.payload)),
                Some(Incoming::Disconnect { reason_code, reason }) => bail!("disconnected by server ({reason_code}): {reason}"),
                None => bail!("connection closed"),
            },
            _ = ping.tick() => client.ping().await?,
        }
    }
}
