// Drives the operator console in headless Chromium (puppeteer-core over the DevTools protocol) the way
// an operator would, and prints one JSON line: {ok, steps, moved}. Run by cli/tests/console.rs with:
//   CONSOLE_URL   http://host:port/console of a core node
//   ADMIN_TOKEN   the cluster's admin token
//   ONLINE_UID    a user who is online, and ONLINE_EDGE the edge their session is on
//   GROUP_ID      a group with messages
//   SHOTS         directory for screenshots
//   CHROMIUM      the browser (default /usr/bin/chromium)
import puppeteer from 'puppeteer-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = process.env;
const need = (k) => env[k] || (() => { throw new Error(`${k} is not set`); })();
const url = need('CONSOLE_URL');
const shots = need('SHOTS');
mkdirSync(shots, { recursive: true });

const steps = [];
let moved = null;
async function step(name, run) {
  const started = Date.now();
  try {
    const detail = await run();
    steps.push({ name, ok: true, ms: Date.now() - started, ...(detail || {}) });
  } catch (e) {
    steps.push({ name, ok: false, ms: Date.now() - started, error: String(e && e.message || e) });
    throw e;
  }
}

const browser = await puppeteer.launch({
  executablePath: env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let ok = false;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on('dialog', (d) => d.accept());
  const text = (sel) => page.$eval(sel, (e) => e.textContent.trim());

  await step('a wrong token is refused', async () => {
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    await page.type('#token', 'not-the-token');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-error').textContent.length > 0, { timeout: 10000 });
    if (!(await page.$eval('#view-core', (e) => e.hidden))) throw new Error('the core view shows without a token');
    await page.screenshot({ path: join(shots, 'login.png') });
    return { message: await text('#login-error') };
  });

  await step('signed in, three nodes and every slot led', async () => {
    await page.$eval('#token', (e) => { e.value = ''; });
    await page.type('#token', need('ADMIN_TOKEN'));
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#slots tr[data-slot]')];
      return document.querySelectorAll('#nodes tr[data-node]').length === 3 && rows.length > 0
        && rows.every((r) => /node \d/.test(r.querySelector('.leader').textContent));
    }, { timeout: 15000 });
    const slots = await page.$$eval('#slots tr[data-slot]', (rows) => rows.length);
    return { slots };
  });

  await step('a slot leader moved from the page', async () => {
    const before = await text('#slots tr[data-slot="0"] .leader');
    const target = await page.$eval('#slots tr[data-slot="0"] select', (s) => s.value);
    await page.click('#slots tr[data-slot="0"] button');
    await page.waitForFunction((t) => document.querySelector('#slots tr[data-slot="0"] .leader').textContent.includes(`node ${t}`),
      { timeout: 20000 }, target);
    moved = { slot: 0, from: before, to: Number(target) };
    return moved;
  });

  await step('rates and screenshots', async () => {
    // Three refreshes give the small charts a few points.
    await new Promise((r) => setTimeout(r, 6500));
    await page.screenshot({ path: join(shots, 'core.png'), fullPage: true });
    const fsyncs = await page.$eval('[data-rate="wal_syncs"] .value', (v) => Number(v.textContent.replace(/,/g, '')));
    if (!(fsyncs > 0)) throw new Error(`fsyncs per second shows ${fsyncs} under traffic`);
    await page.click('nav button[data-view="deployment"]');
    // The edge's round trip to each of the three nodes, and its connection rate.
    await page.waitForFunction(() => document.querySelectorAll('#regions [data-edge] [data-rtt-node]').length === 3
      && document.querySelector('#regions [data-edge] [data-connects]'), { timeout: 10000 });
    await page.screenshot({ path: join(shots, 'deployment.png'), fullPage: true });
    return { fsyncs, edge: await text('#regions [data-edge]') };
  });

  await step('an online user and their edge', async () => {
    await page.click('nav button[data-view="users"]');
    await page.type('#uid', need('ONLINE_UID'));
    await page.click('#user-form button[type=submit]');
    await page.waitForSelector('#user-sessions td.edge', { timeout: 10000 });
    const edge = await text('#user-sessions td.edge');
    if (edge !== need('ONLINE_EDGE')) throw new Error(`shows edge ${edge}, want ${env.ONLINE_EDGE}`);
    await page.screenshot({ path: join(shots, 'users.png'), fullPage: true });
    return { edge };
  });

  await step('a group, its members and last messages', async () => {
    await page.click('nav button[data-view="channels"]');
    await page.type('#channel-id', need('GROUP_ID'));
    await page.click('#channel-form button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#channel table tr').length > 2, { timeout: 10000 });
    await page.screenshot({ path: join(shots, 'channels.png'), fullPage: true });
    return { heading: await text('#channel h2') };
  });

  await step('on a phone', async () => {
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    await page.click('nav button[data-view="core"]');
    await page.waitForSelector('#slots tr[data-slot]', { timeout: 10000 });
    await page.screenshot({ path: join(shots, 'core-phone.png'), fullPage: true });
  });

  await step('signed out', async () => {
    await page.click('#logout');
    await page.waitForFunction(() => !document.getElementById('login').hidden, { timeout: 5000 });
    await page.reload({ waitUntil: 'domcontentloaded' });
    if (await page.$eval('#login', (e) => e.hidden)) throw new Error('still signed in after a reload');
  });
  ok = true;
} catch {
  // The failed step is in `steps`.
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ok, steps, moved }));
process.exit(ok ? 0 : 1);
