// The council console in Debian's headless Chromium, driven by playwright-core.
//
// Run by tests/tests/console_browser.rs as `node console.mjs CONFIG.json` against a real
// `fieldcap serve --console-listen` with devices already synced; CONFIG names the addresses, the
// staff set-up links, the clips with their corrected start times and original files, the
// observation, and a ready video for the device enrolled from the QR code. Every check runs with
// a time limit and is reported as `ok - NAME` or `FAIL - NAME: why`; the last line is
// `N passed, M failed` and the exit code is 1 when any failed. Screenshots of the main pages go
// to CONFIG.screenshot_dir. Only 127.0.0.1 is contacted: any other request is aborted and fails
// the run.

import { chromium } from 'playwright-core';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
// `main` (everything), or `idle`: run against a server started with a short
// --console-idle-secs (cfg.idle_secs), after `main` has set the passwords.
const phase = process.argv[3] || 'main';
const C = cfg.console_url.replace(/\/$/, '');
const WAIT = 15_000; // every wait for an element, a navigation or a condition
const NAV = 30_000;
const FRAME = cfg.frame_ms;
mkdirSync(cfg.out_dir, { recursive: true });
mkdirSync(cfg.screenshot_dir, { recursive: true });

let passed = 0;
const failed = [];
const result = {};
const offsite = [];

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok - ${name}`);
  } catch (e) {
    const why = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join(' | ');
    failed.push(`${name}: ${why}`);
    console.log(`FAIL - ${name}: ${why}`);
  }
}

const staff = Object.fromEntries(cfg.staff.map((s) => [s.role, s]));
const clips = cfg.clips;
const byLabel = Object.fromEntries(clips.map((c) => [c.label, c]));
const minor = clips.find((c) => c.minor_present);

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  timeout: NAV,
});

/** A new browser context (own cookies) that may contact 127.0.0.1 only. */
async function newContext() {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  ctx.setDefaultTimeout(WAIT);
  ctx.setDefaultNavigationTimeout(NAV);
  await ctx.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'data:' || u.protocol === 'blob:' || u.hostname === '127.0.0.1') return route.continue();
    offsite.push(route.request().url());
    return route.abort();
  });
  return ctx;
}

async function shot(page, name) {
  await page.screenshot({ path: join(cfg.screenshot_dir, `console-${name}.png`), fullPage: true, timeout: WAIT });
}

/** The CSRF token of `role`'s session, from a freshly fetched page (every page's logout form has it). */
async function csrfFor(role) {
  const html = await (await ctxs[role].request.get(`${C}/incidents`)).text();
  const m = html.match(/name="csrf" value="([^"]+)"/);
  assert(m && m[1].length >= 16, `no CSRF token on ${role}'s /incidents`);
  return m[1];
}

/** Asserts that an API response is a refusal page with `status`. */
async function assertRefused(resp, status, what) {
  const body = await resp.text();
  assert(resp.status() === status, `${what}: expected ${status}, got ${resp.status()}`);
  assert(/id=["']?refusal/.test(body), `${what}: the ${status} page has no h1#refusal`);
}

const SUBMIT = '[type=submit], button:not([type])';

/** Submits `form` with its button and waits for the navigation; returns the final response. */
async function submit(page, form) {
  const [resp] = await Promise.all([page.waitForNavigation({ timeout: NAV * 2 }), page.locator(`${form} :is(${SUBMIT})`).first().click()]);
  return resp;
}

/** Logs `who` in on a fresh page of `ctx`; returns the page (on /incidents). */
async function login(ctx, who, password = who.password) {
  const page = await ctx.newPage();
  await page.goto(`${C}/login`);
  await page.locator('#login input[name=name]').fill(who.name);
  await page.locator('#login input[name=password]').fill(password);
  await submit(page, '#login');
  assert(new URL(page.url()).pathname === '/incidents', `after login: ${page.url()}`);
  return page;
}

/** The text of the QR code in the image at `png`, or null if zbarimg finds none. */
function zbar(png) {
  try {
    return execFileSync('zbarimg', ['--raw', '-q', png], { timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch (e) {
    if (e.status === 4) return null; // zbarimg: no symbol found
    throw e;
  }
}

const ctxs = {};
const pages = {};

async function finish() {
  if (phase === 'main') writeFileSync(join(cfg.out_dir, 'result.json'), JSON.stringify(result, null, 2));
  await browser.close();
  console.log(`${passed} passed, ${failed.length} failed`);
  process.exit(failed.length === 0 ? 0 : 1);
}

if (phase === 'idle') {
  await check(`a session idle longer than ${cfg.idle_secs} s is refused, and its open form with it`, async () => {
    const ctx = await newContext();
    const page = await login(ctx, staff.clerk);
    await page.goto(`${C}/requests`);
    await page.locator('form#new-request').waitFor();
    // Idle past the limit (a wait, not a measurement: the check is what the server answers).
    await page.waitForTimeout((cfg.idle_secs + 2) * 1000);
    await page.locator('form#new-request input[name=requester]').fill('idle');
    await page.locator('form#new-request textarea[name=description]').fill('idle');
    const resp = await submit(page, 'form#new-request');
    assert(new URL(page.url()).pathname === '/login' || [401, 403].includes(resp.status()), `POST from an idle session: ${resp.status()} at ${page.url()}`);
    const r = await ctx.request.get(`${C}/incidents`, { maxRedirects: 0 });
    assert([302, 303, 307].includes(r.status()) && /\/login/.test(r.headers()['location'] || ''), `GET /incidents with an idle session: ${r.status()}`);
    // Logging in again works, and the idle form logged nothing.
    const again = await login(ctx, staff.clerk);
    assert(!(await (await ctx.request.get(`${C}/requests`)).text()).includes('>idle<'), 'the idle form logged a request');
    await again.close();
    await ctx.close();
  });
  await finish();
}

// ---- Set-up links and logins ----------------------------------------------------------------
for (const s of cfg.staff) {
  await check(`set-up link sets ${s.role}'s password`, async () => {
    const link = new URL(s.setup_link);
    assert(`${link.protocol}//${link.host}` === C, `the set-up link ${link.protocol}//${link.host} is not the console ${C}`);
    const ctx = await newContext();
    const page = await ctx.newPage();
    await page.goto(s.setup_link);
    if (s.role === 'clerk') await shot(page, 'setup');
    await page.locator('#setup input[name=password]').fill(s.password);
    await page.locator('#setup input[name=password2]').fill(s.password);
    await submit(page, '#setup');
    assert(new URL(page.url()).pathname === '/login', `after set-up: ${page.url()}`);
    // The token works once.
    const again = await ctx.request.get(s.setup_link, { maxRedirects: 0 });
    assert(again.status() >= 400, `a used set-up link still answers ${again.status()}`);
    await ctx.close();
  });
}

await check('a wrong password is refused with a clear page', async () => {
  const ctx = await newContext();
  const page = await ctx.newPage();
  await page.goto(`${C}/login`);
  await shot(page, 'login');
  await page.locator('#login input[name=name]').fill(staff.clerk.name);
  await page.locator('#login input[name=password]').fill('not the password at all');
  await submit(page, '#login');
  await page.locator('#refusal').waitFor();
  assert((await ctx.cookies()).every((c) => c.name !== 'fieldcap_console'), 'a session cookie was set for a wrong password');
  const r = await ctx.request.get(`${C}/incidents`, { maxRedirects: 0 });
  assert([302, 303, 307].includes(r.status()) && /\/login/.test(r.headers()['location'] || ''), `GET /incidents without a session: ${r.status()} ${r.headers()['location']}`);
  await ctx.close();
});

for (const s of cfg.staff) {
  await check(`${s.role} logs in`, async () => {
    ctxs[s.role] = await newContext();
    const page = await login(ctxs[s.role], s);
    pages[s.role] = page;
    const who = page.locator('#whoami');
    assert((await who.getAttribute('data-role')) === s.role, `#whoami data-role is ${await who.getAttribute('data-role')}`);
    assert((await who.textContent()).trim() === s.name, `#whoami says ${(await who.textContent()).trim()}`);
    await page.locator('#logout').waitFor();
    const cookie = (await ctxs[s.role].cookies()).find((c) => c.name === 'fieldcap_console');
    assert(cookie, 'no fieldcap_console cookie');
    assert(cookie.httpOnly, 'the session cookie is not HttpOnly');
    assert(cookie.sameSite === 'Strict', `the session cookie is SameSite=${cookie.sameSite}`);
    assert(cookie.path === '/', `the session cookie's path is ${cookie.path}`);
  });
}

// ---- Incidents and the synchronized review --------------------------------------------------
let incidentId = null;
await check('the incident is listed with its devices, items and minor_present tag', async () => {
  const page = pages.clerk;
  await page.goto(`${C}/incidents`);
  await page.locator('table#incidents').waitFor();
  const rows = page.locator('table#incidents tr.incident');
  const n = await rows.count();
  assert(n >= 1, 'no tr.incident');
  for (let i = 0; i < n && !incidentId; i++) {
    const id = await rows.nth(i).getAttribute('data-incident-id');
    const html = await (await ctxs.clerk.request.get(`${C}/incidents/${encodeURIComponent(id)}`)).text();
    if (clips.every((c) => html.includes(c.clip_id))) incidentId = id;
  }
  assert(incidentId, `no incident page holds all three clips (${n} incidents)`);
  const row = page.locator(`table#incidents tr.incident[data-incident-id="${incidentId}"]`);
  const text = await row.innerText();
  assert(/minor_present/.test(text), `the incident row does not show the minor_present tag: ${text}`);
  assert((await row.locator('a.incident-link').getAttribute('href')).endsWith(`/incidents/${incidentId}`), 'a.incident-link does not lead to the incident');
  await shot(page, 'incidents');
});

/** The review's state: origin, and per video its start, currentTime, duration, flags. */
async function reviewState(page) {
  return page.evaluate(() => ({
    origin: Number(document.querySelector('#scrubber').dataset.originMs),
    value: Number(document.querySelector('#scrubber').value),
    videos: [...document.querySelectorAll('video.angle')].map((v) => ({
      clip: v.dataset.clipId,
      start: Number(v.dataset.startMs),
      t: v.currentTime,
      dur: v.duration,
      paused: v.paused,
      seeking: v.seeking,
    })),
  }));
}

async function settle(page) {
  await page.waitForFunction(() => [...document.querySelectorAll('video.angle')].every((v) => !v.seeking && v.readyState >= 1), null, { timeout: WAIT });
}

/** Every video shows the wall-clock instant origin + value (within one frame), or waits at 0/end. */
function assertInStep(st, value, tolerance, how) {
  const wall = st.origin + value;
  for (const v of st.videos) {
    const end = v.start + v.dur * 1000;
    if (wall >= v.start && wall <= end) {
      const shown = v.start + v.t * 1000;
      assert(Math.abs(shown - wall) <= tolerance, `${how} ${value} ms: ${v.clip} shows ${Math.round(shown - st.origin)} ms from origin (currentTime ${v.t.toFixed(3)} s), expected ${value} ± ${tolerance}`);
    } else if (wall < v.start) {
      assert(v.t * 1000 <= tolerance, `${how} ${value} ms: ${v.clip} has not started yet but is at ${v.t} s`);
    } else {
      assert((v.dur - v.t) * 1000 <= tolerance, `${how} ${value} ms: ${v.clip} has ended but is at ${v.t} s of ${v.dur}`);
    }
  }
}

await check('the review places each clip at its corrected start (clock offsets applied)', async () => {
  const page = pages.clerk;
  await page.goto(`${C}/incidents/${incidentId}`);
  const vids = page.locator('video.angle');
  await vids.first().waitFor();
  const seen = await vids.evaluateAll((vs) => vs.map((v) => ({ clip: v.dataset.clipId, start: Number(v.dataset.startMs), device: v.dataset.deviceId, src: v.getAttribute('src') })));
  for (const c of clips) {
    const v = seen.find((x) => x.clip === c.clip_id);
    assert(v, `no video.angle for clip ${c.label} ${c.clip_id}`);
    assert(Math.abs(v.start - c.start_ms) <= 1, `clip ${c.label}: data-start-ms ${v.start}, corrected start ${c.start_ms} (device clock ${cfg.devices.find((d) => d.label === c.label).skew_s} s off)`);
    assert(v.device === c.device_id, `clip ${c.label}: data-device-id ${v.device}`);
    assert(new URL(v.src, C).pathname === `/media/${c.clip_id}`, `clip ${c.label}: src ${v.src}`);
  }
  const origin = Number(await page.locator('#scrubber').getAttribute('data-origin-ms'));
  const earliest = Math.min(...seen.map((v) => v.start));
  assert(origin === earliest, `data-origin-ms ${origin} is not the earliest corrected start ${earliest}`);
  assert((await page.locator('#scrubber').getAttribute('type')) === 'range', '#scrubber is not a range input');
});

await check('seeking the shared scrubber puts every video at the same instant (within one frame)', async () => {
  const page = pages.clerk;
  await page.waitForFunction(() => [...document.querySelectorAll('video.angle')].every((v) => v.readyState >= 1), null, { timeout: WAIT });
  const origin = Number(await page.locator('#scrubber').getAttribute('data-origin-ms'));
  const start = (l) => byLabel[l].start_ms - origin;
  // Before B and C start, all three running (twice, not on frame boundaries), after A ends,
  // near C's end.
  const values = [500, start('C') + 520, start('C') + 3_030, start('B') + 7_770, start('A') + 10_000 + 700, start('C') + 9_500];
  for (const value of values) {
    await page.evaluate((v) => {
      const s = document.querySelector('#scrubber');
      s.value = String(v);
      s.dispatchEvent(new Event('input', { bubbles: true }));
      s.dispatchEvent(new Event('change', { bubbles: true }));
    }, value);
    await settle(page);
    assertInStep(await reviewState(page), value, FRAME, 'scrubber at');
    if (value === values[2]) await shot(page, 'review');
  }
});

await check('window.fieldcapReview.seek does what the scrubber does', async () => {
  const page = pages.clerk;
  const origin = Number(await page.locator('#scrubber').getAttribute('data-origin-ms'));
  const value = byLabel.C.start_ms - origin + 1_260;
  await page.evaluate((v) => window.fieldcapReview.seek(v), value);
  await settle(page);
  const st = await reviewState(page);
  assert(Math.abs(st.value - value) <= 1, `the scrubber shows ${st.value} after seek(${value})`);
  assertInStep(st, value, FRAME, 'fieldcapReview.seek');
});

await check('play and pause keep the angles in step', async () => {
  const page = pages.clerk;
  const origin = Number(await page.locator('#scrubber').getAttribute('data-origin-ms'));
  const from = byLabel.C.start_ms - origin + 500;
  await page.evaluate((v) => window.fieldcapReview.seek(v), from);
  await settle(page);
  await page.locator('#play').click();
  await page.waitForFunction(
    ({ from, origin }) => {
      const v = [...document.querySelectorAll('video.angle')][0];
      return v && !v.paused && Number(v.dataset.startMs) + v.currentTime * 1000 - origin > from + 1_000;
    },
    { from, origin },
    { timeout: WAIT },
  );
  await page.locator('#pause').click();
  await page.waitForFunction(() => [...document.querySelectorAll('video.angle')].every((v) => v.paused), null, { timeout: WAIT });
  await settle(page);
  const st = await reviewState(page);
  // Where the first video stopped is the instant every other must show.
  const lead = st.videos[0];
  const value = lead.start + lead.t * 1000 - st.origin;
  assertInStep(st, value, 2 * FRAME, 'after play/pause at');
});

await check('the witness observation shows as a mark on the timeline', async () => {
  const page = pages.clerk;
  const o = cfg.observation;
  const mark = page.locator(`#timeline .obs-mark[data-clip-id="${o.clip_id}"]`);
  await mark.waitFor({ state: 'attached' });
  const at = Number(await mark.getAttribute('data-at-ms'));
  const origin = Number(await page.locator('#scrubber').getAttribute('data-origin-ms'));
  // data-at-ms: the corrected instant, either as Unix ms or as ms from the origin.
  assert(Math.abs(at - o.at_ms) <= 1 || Math.abs(at - (o.at_ms - origin)) <= 1, `data-at-ms ${at}; corrected observation time ${o.at_ms} (origin ${origin})`);
});

await check('the map draws one track per device, offline', async () => {
  const page = pages.clerk;
  await page.locator('svg#map').waitFor({ state: 'attached' });
  for (const d of cfg.devices) {
    const line = page.locator(`svg#map polyline.track[data-device-id="${d.device_id}"]`);
    assert((await line.count()) === 1, `device ${d.label}: ${await line.count()} polylines`);
    const pts = ((await line.getAttribute('points')) || '').trim().split(/\s+/).filter(Boolean);
    assert(pts.length >= 2, `device ${d.label}: track has ${pts.length} points`);
  }
  assert(offsite.length === 0, `requests left 127.0.0.1: ${offsite.join(', ')}`);
});

await check('each item shows its verification state', async () => {
  const page = pages.clerk;
  for (const c of clips) {
    const row = page.locator(`table#items tr.item[data-clip-id="${c.clip_id}"]`);
    const verify = (await row.locator('td.verify').innerText()).trim();
    assert(verify === 'verified', `clip ${c.label}: td.verify says "${verify}"`);
    const href = await row.locator(`a[href$="/items/${c.clip_id}"]`).first().getAttribute('href');
    assert(href, `clip ${c.label}: no link to /items/${c.clip_id}`);
  }
});

// ---- Media over HTTP ranges ----------------------------------------------------------------
await check('a range request returns 206 with the right bytes', async () => {
  const c = byLabel.A;
  const original = readFileSync(c.original);
  const r = await ctxs.clerk.request.get(`${C}/media/${c.clip_id}`, { headers: { Range: 'bytes=100-199' } });
  assert(r.status() === 206, `status ${r.status()}`);
  const body = await r.body();
  assert(body.length === 100, `${body.length} bytes`);
  assert(body.equals(original.subarray(100, 200)), 'the bytes differ from the original bytes 100..199');
  assert((r.headers()['content-range'] || '') === `bytes 100-199/${original.length}`, `Content-Range: ${r.headers()['content-range']}`);
  assert(/bytes/.test(r.headers()['accept-ranges'] || ''), `Accept-Ranges: ${r.headers()['accept-ranges']}`);
  const whole = await ctxs.clerk.request.get(`${C}/media/${c.clip_id}`);
  assert(whole.status() === 200 && (await whole.body()).equals(original), 'the whole media is not the original');
});

await check('a download of the original is an attachment with the original bytes', async () => {
  const c = byLabel.A;
  const r = await ctxs.custodian.request.get(`${C}/media/${c.clip_id}?download=1`);
  assert(r.status() === 200, `status ${r.status()}`);
  assert(/attachment/i.test(r.headers()['content-disposition'] || ''), `Content-Disposition: ${r.headers()['content-disposition']}`);
  assert((await r.body()).equals(readFileSync(c.original)), 'the download is not the original');
});

// ---- Packages ------------------------------------------------------------------------------
let packageId = null;
await check('a custodian builds a package for the District Attorney and downloads it', async () => {
  const page = pages.custodian;
  await page.goto(`${C}/packages`);
  const before = await page.locator('table#packages tr.package').count();
  await page.locator('form#build-package select[name=incident]').selectOption(incidentId);
  await page.locator('form#build-package input[name=recipient]').fill('Los Angeles County District Attorney');
  await page.locator('form#build-package input[name=purpose]').fill('prosecution review of the 0712 operation');
  await submit(page, 'form#build-package');
  assert(new URL(page.url()).pathname === '/packages', `after building: ${page.url()}`);
  const rows = page.locator('table#packages tr.package');
  assert((await rows.count()) === before + 1, `${await rows.count()} package rows after building one (was ${before})`);
  let row = null;
  for (let i = 0; i < (await rows.count()); i++) {
    if (/District Attorney/.test(await rows.nth(i).innerText())) row = rows.nth(i);
  }
  assert(row, 'no package row names the recipient');
  packageId = await row.getAttribute('data-package-id');
  const text = await row.innerText();
  assert(text.includes(staff.custodian.name), `the package row does not say who built it: ${text}`);
  const href = await row.locator('a.download').getAttribute('href');
  assert(new URL(href, C).pathname === `/packages/${packageId}.zip`, `a.download href ${href}`);
  const z = await ctxs.custodian.request.get(new URL(href, C).href);
  assert(z.status() === 200, `download status ${z.status()}`);
  const bytes = await z.body();
  assert(bytes.subarray(0, 2).toString() === 'PK', 'the download is not a ZIP');
  result.package_zip = join(cfg.out_dir, 'package.zip');
  writeFileSync(result.package_zip, bytes);
  await shot(page, 'packages');
});

// ---- Roles: what a clerk and an auditor are refused ----------------------------------------
await check('a clerk cannot download a package', async () => {
  assert(packageId, 'no package was built');
  await assertRefused(await ctxs.clerk.request.get(`${C}/packages/${packageId}.zip`, { maxRedirects: 0 }), 403, 'clerk GET package ZIP');
  const page = await ctxs.clerk.newPage();
  await page.goto(`${C}/packages/${packageId}.zip`).catch(() => {});
  await page.locator('#refusal').waitFor();
  await shot(page, 'refusal');
  await page.close();
});

// ---- Records request -----------------------------------------------------------------------
let requestId = null;
await check('a clerk logs a records request, picks the items and builds the release', async () => {
  const page = pages.clerk;
  await page.goto(`${C}/requests`);
  await page.locator('form#new-request input[name=requester]').fill('Jane Roe, Harbor Gazette');
  await page.locator('form#new-request textarea[name=description]').fill('CPRA: all video of the immigration enforcement at the Harbor bus stop');
  await submit(page, 'form#new-request');
  assert(/^\/requests\/[^/]+$/.test(new URL(page.url()).pathname), `after logging the request: ${page.url()}`);
  requestId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
  for (const c of clips) await page.locator(`form#pick input[type=checkbox][name=clip][value="${c.clip_id}"]`).check();
  await submit(page, 'form#pick');
  await page.goto(`${C}/requests/${requestId}`);
  await submit(page, 'form#build');
  await page.goto(`${C}/requests/${requestId}`);
  const state = (await page.locator('#state').innerText()).trim();
  assert(state === 'built', `#state is "${state}"`);
  assert((await page.locator('form#approve').count()) === 0, 'a clerk is shown the approval form');
  assert((await page.locator('a#download').count()) === 0, 'a clerk is shown the download before approval');
});

await check('a clerk cannot approve the release or download it', async () => {
  assert(requestId, 'no request');
  const csrf = await csrfFor('clerk');
  await assertRefused(await ctxs.clerk.request.post(`${C}/requests/${requestId}/approve`, { form: { csrf, reason: '' }, maxRedirects: 0 }), 403, 'clerk POST approve');
  await assertRefused(await ctxs.clerk.request.get(`${C}/requests/${requestId}/package.zip`, { maxRedirects: 0 }), 403, 'clerk GET request package');
});

await check('the release cannot be downloaded before approval', async () => {
  const r = await ctxs.custodian.request.get(`${C}/requests/${requestId}/package.zip`, { maxRedirects: 0 });
  assert(r.status() >= 400 && r.status() < 500, `custodian GET before approval: ${r.status()}`);
});

await check('a supervisor approves; the minor\'s item is held back; the custodian downloads it', async () => {
  const page = pages.supervisor;
  await page.goto(`${C}/requests/${requestId}`);
  const held = await page.locator('#held-back').innerText();
  assert(held.includes(minor.clip_id), `#held-back does not list the minor_present clip: ${held}`);
  for (const c of clips.filter((c) => !c.minor_present)) assert(!held.includes(c.clip_id), `#held-back lists ${c.label}`);
  await submit(page, 'form#approve');
  await page.goto(`${C}/requests/${requestId}`);
  assert((await page.locator('#state').innerText()).trim() === 'approved', `#state is ${(await page.locator('#state').innerText()).trim()}`);
  const href = await page.locator('a#download').getAttribute('href');
  assert(new URL(href, C).pathname === `/requests/${requestId}/package.zip`, `a#download href ${href}`);
  await shot(page, 'request');
  const z = await ctxs.custodian.request.get(`${C}/requests/${requestId}/package.zip`);
  assert(z.status() === 200, `custodian download: ${z.status()}`);
  const bytes = await z.body();
  assert(bytes.subarray(0, 2).toString() === 'PK', 'not a ZIP');
  result.request_zip = join(cfg.out_dir, 'request.zip');
  writeFileSync(result.request_zip, bytes);
  await assertRefused(await ctxs.clerk.request.get(`${C}/requests/${requestId}/package.zip`, { maxRedirects: 0 }), 403, 'clerk GET approved request package');
});

await check('an auditor reads everything and changes nothing', async () => {
  const page = pages.auditor;
  for (const p of ['/incidents', `/incidents/${incidentId}`, `/items/${byLabel.B.clip_id}`, '/packages', '/devices', '/requests', `/requests/${requestId}`, '/retention']) {
    const r = await page.goto(`${C}${p}`);
    assert(r.status() === 200, `auditor GET ${p}: ${r.status()}`);
    assert((await page.locator('#refusal').count()) === 0, `auditor GET ${p} is a refusal`);
  }
  const csrf = await csrfFor('auditor');
  // The hold form's address, from the custodian's item page (the auditor may be shown none).
  const cp = pages.custodian;
  await cp.goto(`${C}/items/${byLabel.B.clip_id}`);
  const holdAction = new URL((await cp.locator('form#hold').getAttribute('action')) || `/items/${byLabel.B.clip_id}`, `${C}/items/${byLabel.B.clip_id}`).pathname;
  const posts = [
    [holdAction, { reason: 'auditor tries' }],
    ['/devices/enrol', { role: 'monitor' }],
    ['/packages', { incident: incidentId, recipient: 'auditor-package', purpose: 'y' }],
    ['/requests', { requester: 'auditor-request', description: 'y' }],
    [`/requests/${requestId}/items`, { clip: byLabel.A.clip_id }],
    [`/requests/${requestId}/build`, {}],
    [`/requests/${requestId}/approve`, { reason: '' }],
  ];
  for (const p of posts) {
    const r = await ctxs.auditor.request.post(`${C}${p[0]}`, { form: { csrf, ...p[1] }, maxRedirects: 0 });
    await assertRefused(r, 403, `auditor POST ${p[0]}`);
  }
  assert(!(await (await ctxs.auditor.request.get(`${C}/packages`)).text()).includes('auditor-package'), 'the auditor built a package');
  assert(!(await (await ctxs.auditor.request.get(`${C}/requests`)).text()).includes('auditor-request'), 'the auditor logged a request');
});

// ---- CSRF and stale sessions ---------------------------------------------------------------
await check('a forged CSRF token is refused', async () => {
  const page = pages.clerk;
  await page.goto(`${C}/requests`);
  const before = await page.locator('table#requests tr.request').count();
  await page.locator('form#new-request input[name=csrf]').evaluate((i) => (i.value = 'forged-token-forged-token-forged'));
  await page.locator('form#new-request input[name=requester]').fill('forged');
  await page.locator('form#new-request textarea[name=description]').fill('forged');
  const resp = await submit(page, 'form#new-request');
  assert(resp.status() === 403, `forged POST: ${resp.status()}`);
  await page.locator('#refusal').waitFor();
  const none = await ctxs.clerk.request.post(`${C}/requests`, { form: { requester: 'no token', description: 'no token' }, maxRedirects: 0 });
  await assertRefused(none, 403, 'POST without a CSRF token');
  await page.goto(`${C}/requests`);
  assert((await page.locator('table#requests tr.request').count()) === before, 'a forged request was logged');
});

await check('a stale form (its session logged out) is refused', async () => {
  const ctx = await newContext();
  const page = await login(ctx, staff.clerk);
  await page.goto(`${C}/requests`);
  const before = await page.locator('table#requests tr.request').count();
  const cookies = await ctx.cookies();
  const other = await ctx.newPage();
  await other.goto(`${C}/incidents`);
  await submit(other, '#logout');
  // The page still holds the form and the old CSRF token; the session behind them has ended.
  await page.locator('form#new-request input[name=requester]').fill('stale');
  await page.locator('form#new-request textarea[name=description]').fill('stale');
  const resp = await submit(page, 'form#new-request');
  assert(new URL(page.url()).pathname === '/login' || [401, 403].includes(resp.status()), `stale POST: ${resp.status()} at ${page.url()}`);
  // The old cookie, replayed in another context, is no session either.
  const replay = await newContext();
  await replay.addCookies(cookies);
  const r = await replay.request.get(`${C}/incidents`, { maxRedirects: 0 });
  assert([302, 303, 307].includes(r.status()) && /\/login/.test(r.headers()['location'] || ''), `a logged-out cookie still opens /incidents: ${r.status()}`);
  const count = await (await ctxs.clerk.request.get(`${C}/requests`)).text();
  assert(!count.includes('>stale<'), 'the stale form logged a request');
  assert(before >= 0);
  await replay.close();
  await ctx.close();
});

// ---- Holds ---------------------------------------------------------------------------------
await check('a custodian places and releases a hold with reasons; a clerk may not', async () => {
  const page = pages.custodian;
  const c = byLabel.B;
  await page.goto(`${C}/items/${c.clip_id}`);
  await page.locator('form#hold input[name=reason]').fill('litigation hold: DA case 26-0712');
  await submit(page, 'form#hold');
  await page.goto(`${C}/items/${c.clip_id}`);
  const held = await page.locator('ol#custody li').evaluateAll((ls) => ls.map((l) => `${l.dataset.event}/${l.dataset.staff}`));
  assert(held.some((e) => /hold|held/.test(e) && e.endsWith(`/${staff.custodian.name}`)), `no hold event by ${staff.custodian.name}: ${held.join(', ')}`);
  const action = new URL((await page.locator('form#hold').getAttribute('action')) || '', page.url()).href;
  const csrf = await csrfFor('clerk');
  await assertRefused(await ctxs.clerk.request.post(action, { form: { csrf, reason: 'clerk tries' }, maxRedirects: 0 }), 403, 'clerk POST hold');
  const rel = page.locator('form#release');
  if ((await rel.locator('[name=reason]').count()) > 0) await rel.locator('[name=reason]').fill('case closed');
  await submit(page, 'form#release');
  await page.goto(`${C}/items/${c.clip_id}`);
  const events = await page.locator('ol#custody li').evaluateAll((ls) => ls.map((l) => `${l.dataset.event}/${l.dataset.staff}`));
  assert(events.filter((e) => e.endsWith(`/${staff.custodian.name}`)).length >= 2, `custody after hold and release: ${events.join(', ')}`);
});

// ---- Enrolment by QR code ------------------------------------------------------------------
await check('an enrolment QR code decodes to a token a device enrols and syncs with; its clip shows', async () => {
  const page = pages.custodian;
  await page.goto(`${C}/devices`);
  await page.locator('form#enrol select[name=role]').selectOption('monitor');
  await submit(page, 'form#enrol');
  const qr = page.locator('#enrol-qr');
  await qr.waitFor();
  await shot(page, 'enrol');
  // The code as the page shows it; if zbarimg finds none there (no quiet zone around it on the
  // page), the same SVG rasterised by Chromium on a white page with a margin.
  const png = join(cfg.out_dir, 'enrol-qr.png');
  await qr.screenshot({ path: png, timeout: WAIT });
  let decoded = zbar(png);
  if (decoded === null) {
    const svg = await qr.innerHTML();
    const raster = await pages.custodian.context().newPage();
    await raster.setContent(`<body style="margin:0;background:#fff"><div id="q" style="display:inline-block;padding:32px;background:#fff;width:320px">${svg}</div></body>`);
    const png2 = join(cfg.out_dir, 'enrol-qr-raster.png');
    await raster.locator('#q').screenshot({ path: png2, timeout: WAIT });
    await raster.close();
    decoded = zbar(png2);
    console.log('# the QR code on the page did not decode as shown; its SVG rasterised with a margin did: ' + (decoded !== null));
  }
  assert(decoded !== null, 'zbarimg found no QR code');
  const payload = JSON.parse(decoded);
  const shown = JSON.parse((await page.locator('pre#enrol-payload').innerText()).trim());
  assert(payload.token && payload.server && payload.server_key_id, `payload fields: ${Object.keys(payload)}`);
  assert(payload.token === shown.token && payload.server === shown.server && payload.server_key_id === shown.server_key_id, 'the QR code and pre#enrol-payload differ');
  assert(payload.server.replace(/\/$/, '') === cfg.api_url.replace(/\/$/, ''), `payload server ${payload.server} is not the device API ${cfg.api_url}`);
  const q = cfg.qr;
  const run = (args) => execFileSync(cfg.fieldcap, ['--home', q.home, ...args], { timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  run(['init', '--role', 'monitor']);
  const enrolled = run(['enroll', '--server', payload.server, '--token', payload.token]);
  assert(enrolled.includes(payload.server_key_id), `the device enrolled with another server key: ${enrolled.trim()}`);
  const sealed = JSON.parse(run(['capture', q.video, '--track', q.track, '--started-at', q.started_at, '--ended-at', q.ended_at, '--json']));
  const sync = JSON.parse(run(['sync', '--json', '--timeout', '60']));
  assert(sync.remaining === 0 && sync.receipts_verified >= 1, `sync: ${JSON.stringify(sync)}`);
  const clips = JSON.parse(run(['clips', '--json']));
  result.qr_clip_id = sealed.clip_id;
  result.qr_device_id = clips.device_id;
  await page.goto(`${C}/devices`);
  await page.locator(`table#devices tr.device[data-device-id="${clips.device_id}"]`).waitFor({ state: 'attached' });
  await shot(page, 'devices');
  const item = await page.goto(`${C}/items/${sealed.clip_id}`);
  assert(item.status() === 200, `GET /items/${sealed.clip_id}: ${item.status()}`);
  await page.locator('#verification').waitFor({ state: 'attached' });
  await page.goto(`${C}/incidents/${incidentId}`);
  await page.locator(`video.angle[data-clip-id="${sealed.clip_id}"]`).waitFor({ state: 'attached' });
});

await check('a clerk cannot enrol or revoke devices', async () => {
  const csrf = await csrfFor('clerk');
  await assertRefused(await ctxs.clerk.request.post(`${C}/devices/enrol`, { form: { csrf, role: 'monitor' }, maxRedirects: 0 }), 403, 'clerk POST enrol');
});

// ---- Retention and reports -----------------------------------------------------------------
await check('the retention page lists every item', async () => {
  const page = pages.supervisor;
  await page.goto(`${C}/retention`);
  for (const c of clips) await page.locator(`table#retention tr[data-clip-id="${c.clip_id}"]`).waitFor({ state: 'attached' });
  await shot(page, 'retention');
});

await check('the MOIA report carries no personal data', async () => {
  for (const f of ['moia.csv', 'moia.json']) {
    const r = await ctxs.supervisor.request.get(`${C}/reports/${f}`);
    assert(r.status() === 200, `${f}: ${r.status()}`);
    const t = await r.text();
    assert(t.length > 0, `${f} is empty`);
    for (const s of [...cfg.devices.map((d) => d.device_id), ...cfg.staff.map((s) => s.name), '33.7406', '118.276', 'detained one man']) {
      assert(!t.includes(s), `${f} contains ${s}`);
    }
  }
});

// ---- Custody: every access names the staff account -----------------------------------------
await check('the item custody shows the views, downloads and packages with the staff', async () => {
  const page = pages.auditor;
  const c = byLabel.A;
  await page.goto(`${C}/items/${c.clip_id}`);
  await shot(page, 'item');
  const events = await page.locator('ol#custody > li').evaluateAll((ls) => ls.map((l) => ({ event: l.dataset.event, staff: l.dataset.staff, detail: (l.querySelector('.detail') || {}).textContent || '' })));
  const has = (ev, who) => events.some((e) => (ev instanceof RegExp ? ev.test(e.event || '') : e.event === ev) && e.staff === who);
  const list = events.map((e) => `${e.event}/${e.staff || '-'}`).join(', ');
  assert(has('media_viewed', staff.clerk.name), `no media_viewed by ${staff.clerk.name}: ${list}`);
  assert(has('media_downloaded', staff.custodian.name), `no media_downloaded by ${staff.custodian.name}: ${list}`);
  assert(has(/packag/, staff.custodian.name), `no package event by ${staff.custodian.name}: ${list}`);
  // Building a package (the DA's by the custodian, the release by the clerk) is custody too.
  const built = events.filter((e) => e.event === 'exported');
  assert(built.length >= 2, `${built.length} exported events for two packages: ${list}`);
  assert(built.every((e) => e.staff === staff.custodian.name || e.staff === staff.clerk.name), `package builds without the staff account who built them (data-staff): ${built.map((e) => `${e.staff || '-'} ${e.detail}`).join(' ; ')}`);
  const views = events.filter((e) => e.event === 'media_viewed' && e.staff === staff.clerk.name).length;
  assert(views === 1, `${views} media_viewed events for one clerk session (once per session and item)`);
});

// ---- Rate limit (last: it may lock this address out of /login) -------------------------------
await check('repeated failed logins are rate-limited (429)', async () => {
  const ctx = await newContext();
  const page = await ctx.newPage();
  let limited = false;
  for (let i = 0; i < 30 && !limited; i++) {
    await page.goto(`${C}/login`);
    if ((await page.locator('#login').count()) === 0) {
      limited = true;
      break;
    }
    await page.locator('#login input[name=name]').fill('nobody.at.all');
    await page.locator('#login input[name=password]').fill(`wrong password ${i}`);
    const resp = await submit(page, '#login');
    if (resp.status() === 429) limited = true;
  }
  assert(limited, 'thirty wrong passwords in a row were never answered 429');
  await ctx.close();
});

await check('no request left 127.0.0.1', async () => {
  assert(offsite.length === 0, offsite.join(', '));
});

await finish();
