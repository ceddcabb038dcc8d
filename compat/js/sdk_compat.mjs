// Compatibility driver: the published WuKongIM JS SDK (wukongimjssdk@1.0.4)
// against a Tern edge speaking the WuKongIM binary protocol over WebSocket.
//
//   node sdk_compat.mjs            run the whole scenario (parent/orchestrator)
//   node sdk_compat.mjs <role>     one SDK client (alice|bob); only as a forked
//                                  child of the orchestrator (uses its IPC channel)
//
// The SDK is a set of process-wide singletons (WKSDK.shared(), ConnectManager,
// SecurityManager holding the session AES key), so each user runs in its own
// Node process; the orchestrator drives them over IPC and checks what they saw.
//
// Env: TERN_WS_ADDR (ws://127.0.0.1:5200), TERN_API_ADDR (the core's HTTP API, host:port),
//      ALICE_UID, ALICE_TOKEN, BOB_UID,
//      BOB_TOKEN, GROUP_ID; optional STEP_TIMEOUT_MS (default 10000),
//      TERN_COMPAT_VERBOSE=1 (SDK console output to stderr).
// Output: progress on stderr; exactly one JSON summary line on stdout.
// Exit: 0 all checks passed, 1 a check failed, 2 bad usage/config.

import { fork } from 'node:child_process';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const VERBOSE = process.env.TERN_COMPAT_VERBOSE === '1';
const STEP_TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS || 10000);
const ROLES = ['alice', 'bob'];

// WuKongIM packet types (high nibble of the fixed header byte).
const PACKET_NAMES = ['RESERVED', 'CONNECT', 'CONNACK', 'SEND', 'SENDACK', 'RECV', 'RECVACK',
  'PING', 'PONG', 'DISCONNECT', 'SUB', 'SUBACK'];
const packetName = (b) => PACKET_NAMES[b >> 4] ?? `TYPE${b >> 4}`;

const role = process.argv[2];
if (role === undefined) {
  await orchestrate();
} else if (ROLES.includes(role)) {
  await runClient(role);
} else {
  process.stderr.write(`usage: node ${process.argv[1]} [alice|bob]\n`);
  process.exit(2);
}

// ---------------------------------------------------------------------------
// Child: one SDK instance.
// ---------------------------------------------------------------------------
async function runClient(me) {
  if (typeof process.send !== 'function') {
    process.stderr.write(`role "${me}" must be started by the orchestrator (node ${process.argv[1]})\n`);
    process.exit(2);
  }
  const post = (msg) => process.send({ role: me, at: Date.now(), ...msg });

  // The SDK logs a great deal via console.log; keep it off stdout.
  console.log = VERBOSE ? (...a) => process.stderr.write(`[${me} sdk] ${a.map(fmt).join(' ')}\n`) : () => {};
  // A browser would only log these; under Node they would kill the process.
  // Report them instead: a compatible server must not provoke any.
  process.on('unhandledRejection', (e) => post({ ev: 'sdkerror', message: String(e?.stack || e) }));
  process.on('uncaughtException', (e) => post({ ev: 'sdkerror', message: String(e?.stack || e) }));

  // --- Globals: the SDK only needs a browser-style WebSocket constructor. ---
  const { WebSocket: WsWebSocket } = await import('ws');
  const framesOut = {};
  const framesIn = {};
  let textFramesIn = 0;
  class CompatWebSocket extends WsWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.on('error', (e) => post({ ev: 'wserror', message: e.message, code: e.code }));
      this.on('close', (code, reason) => post({ ev: 'wsclose', code, reason: reason.toString() }));
      this.on('message', (data, isBinary) => {
        if (!isBinary) textFramesIn++;
        const first = data instanceof ArrayBuffer ? new Uint8Array(data)[0] : data[0];
        if (first === undefined) return;
        framesIn[packetName(first)] = (framesIn[packetName(first)] || 0) + 1;
        post({ ev: 'frame', type: packetName(first), binary: isBinary });
      });
    }
    send(data, ...rest) {
      if (data && data.length) framesOut[packetName(data[0])] = (framesOut[packetName(data[0])] || 0) + 1;
      return super.send(data, ...rest);
    }
  }
  globalThis.WebSocket = CompatWebSocket;

  // --- Load the SDK (see sdk_hooks.mjs for why hooks are needed). ---
  register('./sdk_hooks.mjs', import.meta.url);
  const { WKSDK, Channel, MessageText, MessageStatus } = await import('wukongimjssdk/lib/sdk.js');
  const { ConnectStatus } = await import('wukongimjssdk/lib/connect_manager.js');
  const { Conversation, Message } = await import('wukongimjssdk/lib/model.js');

  const env = process.env;
  const sdk = WKSDK.shared();
  sdk.config.addr = env.TERN_WS_ADDR;
  sdk.config.uid = env[`${me.toUpperCase()}_UID`];
  sdk.config.token = env[`${me.toUpperCase()}_TOKEN`];
  sdk.config.deviceFlag = 1; // web (the SDK default)
  // The app feeds the SDK's conversation list from the server's /conversation/sync, converting each
  // entry as WuKongIM's demo does (channel, unread, timestamp, recents[0] as the last message).
  sdk.config.provider.syncConversationsCallback = async () => {
    const res = await fetch(`http://${env.TERN_API_ADDR}/conversation/sync`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uid: sdk.config.uid, msg_count: 1 }),
    });
    if (!res.ok) throw new Error(`/conversation/sync answered ${res.status}: ${await res.text()}`);
    return (await res.json()).map((c) => {
      const conversation = new Conversation();
      conversation.channel = new Channel(c.channel_id, c.channel_type);
      conversation.unread = c.unread || 0;
      conversation.timestamp = c.timestamp || 0;
      const recent = (c.recents || [])[0];
      if (recent) {
        const m = new Message();
        m.channel = new Channel(recent.channel_id, recent.channel_type);
        m.messageID = recent.message_idstr;
        m.messageSeq = recent.message_seq;
        m.clientMsgNo = recent.client_msg_no;
        m.fromUID = recent.from_uid;
        m.timestamp = recent.timestamp;
        conversation.lastMessage = m;
      }
      return conversation;
    });
  };
  post({ ev: 'config', protoVersion: sdk.config.protoVersion, deviceFlag: sdk.config.deviceFlag,
    heartbeatIntervalMs: sdk.config.heartbeatInterval });

  sdk.connectManager.addConnectStatusListener((status, reasonCode) => {
    post({ ev: 'status', status, statusName: ConnectStatus[status], reasonCode });
  });
  sdk.chatManager.addMessageStatusListener((ack) => {
    post({ ev: 'sendack', clientSeq: ack.clientSeq, messageID: String(ack.messageID),
      messageSeq: ack.messageSeq, reasonCode: ack.reasonCode });
  });
  sdk.chatManager.addMessageListener((m) => {
    // The SDK also notifies listeners of its own outgoing messages (status Wait);
    // only messages decoded from a server RECV have status Normal.
    if (m.status !== MessageStatus.Normal) return;
    post({ ev: 'recv', fromUID: m.fromUID, channelID: m.channel?.channelID, channelType: m.channel?.channelType,
      messageID: String(m.messageID), messageSeq: m.messageSeq, clientMsgNo: m.clientMsgNo,
      timestamp: m.timestamp, contentType: m.contentType, text: m.content?.text, content: m.content?.contentObj });
  });

  process.on('message', async (cmd) => {
    try {
      if (cmd.cmd === 'send') {
        const msg = await sdk.chatManager.send(new MessageText(cmd.text), new Channel(cmd.channelID, cmd.channelType));
        post({ ev: 'sent', tag: cmd.tag, clientSeq: msg.clientSeq, clientMsgNo: msg.clientMsgNo });
      } else if (cmd.cmd === 'conversations') {
        await sdk.conversationManager.sync({});
        const list = sdk.conversationManager.conversations.map((c) => ({
          channelID: c.channel.channelID, channelType: c.channel.channelType, unread: c.unread,
          lastSeq: c.lastMessage?.messageSeq, lastFrom: c.lastMessage?.fromUID,
        }));
        post({ ev: 'conversations', list });
      } else if (cmd.cmd === 'stats') {
        post({ ev: 'stats', framesOut, framesIn, textFramesIn });
      } else if (cmd.cmd === 'disconnect') {
        post({ ev: 'stats', framesOut, framesIn, textFramesIn });
        sdk.disconnect();
        // The SDK keeps interval timers (receipt flush) alive; leave explicitly.
        setTimeout(() => process.exit(0), 200);
      }
    } catch (e) {
      post({ ev: 'sdkerror', message: String(e?.stack || e) });
    }
  });
  process.on('disconnect', () => process.exit(0)); // orchestrator went away

  sdk.connect();
}

function fmt(v) {
  if (typeof v === 'string') return v;
  if (v && v.type && v.target) return `[${v.type} event]`; // ws events are huge when inspected
  try { return JSON.stringify(v); } catch { return String(v); }
}

// ---------------------------------------------------------------------------
// Parent: spawn both clients, run the scenario, check, summarise.
// ---------------------------------------------------------------------------
async function orchestrate() {
  const env = process.env;
  const required = ['TERN_WS_ADDR', 'TERN_API_ADDR', 'ALICE_UID', 'ALICE_TOKEN', 'BOB_UID', 'BOB_TOKEN', 'GROUP_ID'];
  const missing = required.filter((k) => !env[k]);
  if (missing.length) {
    process.stderr.write(`missing env: ${missing.join(', ')}\n`);
    console.log(JSON.stringify({ ok: false, error: `missing env: ${missing.join(', ')}` }));
    process.exit(2);
  }
  const uid = { alice: env.ALICE_UID, bob: env.BOB_UID };
  const log = (s) => process.stderr.write(`[compat] ${s}\n`);

  const summary = { ok: false, addr: env.TERN_WS_ADDR, sdk: 'wukongimjssdk@1.0.4', steps: [], failures: [],
    alice: { uid: uid.alice }, bob: { uid: uid.bob } };
  const clients = {};

  for (const r of ROLES) {
    const child = fork(SELF, [r], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const c = { child, events: [], waiters: new Set(), exited: null };
    const pipe = (stream) => stream.on('data', (d) => {
      for (const line of String(d).split('\n')) if (line) process.stderr.write(`[${r}] ${line}\n`);
    });
    pipe(child.stdout);
    pipe(child.stderr);
    child.on('message', (m) => {
      c.events.push(m);
      if (m.ev === 'config') summary[r].config = { protoVersion: m.protoVersion, deviceFlag: m.deviceFlag };
      if (m.ev === 'status') (summary[r].statuses ??= []).push(`${m.statusName}/${m.reasonCode}`);
      if (m.ev === 'wserror') (summary[r].wsErrors ??= []).push(m.code || m.message);
      if (m.ev === 'sdkerror') {
        (summary[r].sdkErrors ??= []).push(m.message.split('\n')[0]);
        log(`${r} SDK error: ${m.message}`);
      }
      if (m.ev === 'stats') Object.assign(summary[r], { framesOut: m.framesOut, framesIn: m.framesIn, textFramesIn: m.textFramesIn });
      for (const w of c.waiters) w.check();
    });
    child.on('exit', (code, signal) => {
      c.exited = { code, signal };
      for (const w of c.waiters) w.check();
    });
    clients[r] = c;
  }

  // Wait until an event of `who` at index >= from satisfies pred; fail on timeout,
  // on a `fatal` predicate match, or if the child dies.
  function waitFor(who, from, pred, what, fatal) {
    const c = clients[who];
    return new Promise((resolve, reject) => {
      const w = {
        check() {
          for (let i = from; i < c.events.length; i++) {
            const e = c.events[i];
            const f = fatal && fatal(e);
            if (f) return done(reject, new Error(`${what}: ${f}`));
            if (pred(e)) return done(resolve, e);
          }
          if (c.exited) done(reject, new Error(`${what}: ${who} process exited (${JSON.stringify(c.exited)})`));
        },
      };
      const timer = setTimeout(() => done(reject, new Error(`${what}: timed out after ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS);
      function done(fn, v) { clearTimeout(timer); c.waiters.delete(w); fn(v); }
      c.waiters.add(w);
      w.check();
    });
  }

  async function step(name, fn) {
    const t0 = Date.now();
    log(`step: ${name}`);
    try {
      const detail = await fn();
      summary.steps.push({ name, ok: true, ms: Date.now() - t0, ...(detail || {}) });
    } catch (e) {
      summary.steps.push({ name, ok: false, ms: Date.now() - t0, error: e.message });
      summary.failures.push(`${name}: ${e.message}`);
      throw e;
    }
  }

  function connected(who) {
    return waitFor(who, 0, (e) => e.ev === 'status' && e.status === 1, `${who} connect`, (e) => {
      if (e.ev === 'status' && e.status === 3) return `CONNACK rejected with reasonCode ${e.reasonCode}`;
      if (e.ev === 'status' && e.status === 4) return `kicked (DISCONNECT reasonCode ${e.reasonCode})`;
      return null;
    }).catch((err) => {
      const errs = [...new Set(clients[who].events.filter((e) => e.ev === 'wserror').map((e) => e.code || e.message))];
      throw new Error(errs.length ? `${err.message}; websocket errors: ${errs.join(', ')}` : err.message);
    });
  }

  // One message: `from` sends text to (channelID, channelType); `to` must get it.
  async function exchange(from, to, channelID, channelType, text) {
    const mark = { from: clients[from].events.length, to: clients[to].events.length };
    const tag = `${from}->${channelID}/${channelType}`;
    clients[from].child.send({ cmd: 'send', tag, channelID, channelType, text });
    const sent = await waitFor(from, mark.from, (e) => e.ev === 'sent' && e.tag === tag, `${from} send()`,
      (e) => (e.ev === 'sdkerror' ? e.message.split('\n')[0] : null));
    const ack = await waitFor(from, mark.from, (e) => e.ev === 'sendack' && e.clientSeq === sent.clientSeq,
      `${from} SENDACK for clientSeq ${sent.clientSeq}`);
    const problems = [];
    if (ack.reasonCode !== 1) problems.push(`SENDACK reasonCode ${ack.reasonCode} (want 1)`);
    if (!(ack.messageSeq > 0)) problems.push(`SENDACK messageSeq ${ack.messageSeq} (want > 0)`);
    if (!ack.messageID || ack.messageID === '0') problems.push(`SENDACK messageID ${ack.messageID} (want nonzero)`);
    if (problems.length) throw new Error(problems.join('; '));

    const recv = await waitFor(to, mark.to,
      (e) => e.ev === 'recv' && e.fromUID === uid[from] && e.text === text,
      `${to} RECV of "${text}" from ${uid[from]}`).catch((err) => {
      const got = clients[to].events.slice(mark.to).filter((e) => e.ev === 'recv')
        .map((e) => ({ fromUID: e.fromUID, channelID: e.channelID, channelType: e.channelType, text: e.text }));
      const frames = clients[to].events.slice(mark.to).filter((e) => e.ev === 'frame' && e.type === 'RECV').length;
      const hint = frames > got.length
        ? ` (${frames} RECV frame(s) arrived but the SDK delivered ${got.length}: it silently drops a RECV whose msgKey does not verify or whose payload does not decrypt)`
        : '';
      throw new Error(`${err.message}; ${to} received meanwhile: ${JSON.stringify(got)}${hint}`);
    });
    // For a person channel the receiver sees the channel as the sender's uid.
    const wantChannelID = channelType === 1 ? uid[from] : channelID;
    if (recv.channelType !== channelType) problems.push(`RECV channelType ${recv.channelType} (want ${channelType})`);
    if (recv.channelID !== wantChannelID) problems.push(`RECV channelID ${recv.channelID} (want ${wantChannelID})`);
    if (recv.contentType !== 1) problems.push(`RECV content type ${recv.contentType} (want 1)`);
    if (recv.clientMsgNo !== sent.clientMsgNo) problems.push(`RECV clientMsgNo ${recv.clientMsgNo} != sent ${sent.clientMsgNo}`);
    if (recv.messageID !== ack.messageID) problems.push(`RECV messageID ${recv.messageID} != SENDACK ${ack.messageID}`);
    if (recv.messageSeq !== ack.messageSeq) problems.push(`RECV messageSeq ${recv.messageSeq} != SENDACK ${ack.messageSeq}`);
    if (problems.length) throw new Error(problems.join('; '));
    return {
      sendack: { messageID: ack.messageID, messageSeq: ack.messageSeq, reasonCode: ack.reasonCode },
      recv: { fromUID: recv.fromUID, channelID: recv.channelID, channelType: recv.channelType,
        messageSeq: recv.messageSeq, content: recv.content },
    };
  }

  let exitCode = 1;
  try {
    await step('connect', async () => {
      const [a, b] = await Promise.all([connected('alice'), connected('bob')]);
      return { alice: a.reasonCode, bob: b.reasonCode };
    });
    await step('alice->bob person', () => exchange('alice', 'bob', uid.bob, 1, 'hello bob'));
    await step('bob->alice person', () => exchange('bob', 'alice', uid.alice, 1, 'hello alice'));
    await step('alice->group', () => exchange('alice', 'bob', env.GROUP_ID, 2, 'hello group'));
    // After the exchange above: each user's own sends count as read, the other's do not.
    await step('conversation sync', async () => {
      const want = {
        alice: { [`${uid.bob}/1`]: 1, [`${env.GROUP_ID}/2`]: 0 },
        bob: { [`${uid.alice}/1`]: 0, [`${env.GROUP_ID}/2`]: 1 },
      };
      for (const r of ROLES) {
        want[r] = Object.fromEntries(Object.entries(want[r]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      }
      const got = {};
      for (const r of ROLES) {
        const mark = clients[r].events.length;
        clients[r].child.send({ cmd: 'conversations' });
        const e = await waitFor(r, mark, (e) => e.ev === 'conversations', `${r} conversations`,
          (e) => (e.ev === 'sdkerror' ? e.message.split('\n')[0] : null));
        // Keyed in a fixed order: conversations changed within the same second may come in either.
        const entries = e.list.map((c) => [`${c.channelID}/${c.channelType}`, c.unread]);
        got[r] = Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
        if (e.list.some((c) => !(c.lastSeq > 0))) throw new Error(`${r}: a conversation without its last message: ${JSON.stringify(e.list)}`);
      }
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        throw new Error(`unread by conversation ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
      }
      return { unread: got };
    });
    await step('no SDK errors', async () => {
      const errs = ROLES.flatMap((r) => clients[r].events.filter((e) => e.ev === 'sdkerror').map((e) => `${r}: ${e.message.split('\n')[0]}`));
      if (errs.length) throw new Error(errs.join(' | '));
    });
    exitCode = 0;
  } catch {
    // recorded in summary.failures
  }

  // Shut down: collect frame stats, disconnect, wait for exits (bounded).
  await Promise.all(ROLES.map(async (r) => {
    const c = clients[r];
    if (c.exited) return;
    const mark = c.events.length;
    try { c.child.send({ cmd: 'disconnect' }); } catch { /* child gone */ }
    await waitFor(r, mark, () => false, 'exit').catch(() => {});
    if (!c.exited) c.child.kill('SIGKILL');
  }));

  summary.ok = exitCode === 0;
  log(summary.ok ? 'PASS' : `FAIL: ${summary.failures.join(' | ')}`);
  console.log(JSON.stringify(summary));
  process.exit(exitCode);
}
