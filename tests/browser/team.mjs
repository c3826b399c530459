// The staff team's day in real headless Chromium, against a running `desk demo`:
//
//  - the admin of isfahan signs in (password + the six-digit code from the demo's SMS outbox),
//    invites a desk clerk of unit «شهرسازی» and a department head of unit «درآمد»;
//  - the clerk, on a 360-px phone, opens the SMS invitation, sets a password, signs out, signs in
//    again "the next day" with password + SMS code, works a request of their unit, is refused
//    (403, Persian page) on the other unit's request and on the settings;
//  - the admin deactivates the clerk, and the clerk's open session stops on its next click;
//  - single sign-on: the admin connects the identity provider; the department head accepts the
//    invitation with it and signs in with it the next day;
//  - every page of the journey passes axe-core (no serious or critical WCAG 2.1 A/AA issue);
//    screenshots in target/browser/team-*.png.
//
// Environment: DESK_URL_PORT (port of the demo), DESK_SMS_OUTBOX (the fake provider's /outbox
// page, printed by the demo), DESK_DEMO_PASSWORD, CHROMIUM (default /usr/bin/chromium),
// DESK_OIDC_ISSUER (tests/oidc/provider.mjs, with client miz-isfahan and user b.sharifi).

import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const shotDir = path.resolve(here, '../../target/browser');
mkdirSync(shotDir, { recursive: true });

const port = process.env.DESK_URL_PORT || '8080';
const outboxUrl = process.env.DESK_SMS_OUTBOX;
const password = process.env.DESK_DEMO_PASSWORD || 'miz-demo-1404';
const issuer = process.env.DESK_OIDC_ISSUER;
const host = 'isfahan.localhost';
const url = (p) => `http://${host}:${port}${p}`;
if (!outboxUrl) { console.error('DESK_SMS_OUTBOX is not set'); process.exit(2); }

const failures = [];
const fail = (msg) => { failures.push(msg); console.log(`FAIL ${msg}`); };
const check = (ok, msg) => { if (ok) console.log(`ok   ${msg}`); else fail(msg); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The demo outbox's rows, newest first: { to, text }. */
async function outbox() {
  const html = await (await fetch(outboxUrl)).text();
  const rows = [...html.matchAll(/<tr><td>[^<]*<\/td><td dir="ltr">([^<]*)<\/td><td>(.*?)<\/td><\/tr>/g)];
  return rows.map((m) => ({ to: m[1], text: m[2].replace(/&amp;/g, '&') }));
}

/** Waits for a new SMS to a number ending in `tail` that matches `re`; returns the match. */
async function nextSms(tail, re, seen) {
  for (let i = 0; i < 100; i += 1) {
    const hit = (await outbox()).find((m) => m.to.replace(/\D/g, '').endsWith(tail) && re.test(m.text) && !seen.has(m.text));
    if (hit) { seen.add(hit.text); return hit.text.match(re); }
    await sleep(200);
  }
  throw new Error(`no SMS to …${tail} matching ${re}`);
}

let axeRuns = 0;
async function axe(page, name) {
  axeRuns += 1;
  // Evaluated by the browser's tools, not injected into the page: the page's CSP (which
  // allows only its own nonce) stays whole, and axe still runs.
  await page.evaluate(axeSource);
  // Inline event handlers never run under the page's CSP: none may be left in the markup.
  const handlers = await page.evaluate(() => [...document.querySelectorAll('*')]
    .flatMap((el) => [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `<${el.localName} ${a.name}>`)));
  if (handlers.length) fail(`${page.url()}: inline event handlers the CSP blocks: ${handlers.join(', ')}`);
  const res = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'],
  }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, n: v.nodes.length, t: v.nodes[0]?.target.join(' ') }))));
  for (const v of res) {
    const line = `axe team ${name}: ${v.id} (${v.impact}) ${v.help} — ${v.n} element(s): ${v.t}`;
    if (v.impact === 'serious' || v.impact === 'critical') fail(line); else console.log(`note ${line}`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shotDir, `team-${name}.png`), fullPage: true });
}

/** Signs `username` in through the real pages; the SMS code is read from the demo outbox. */
async function signIn(page, username, tail, seen, name, secret = password) {
  await page.goto(url('/staff/sign-in'));
  await axe(page, `${name}-sign-in`);
  await page.fill('#username', username);
  await page.fill('#password', secret);
  await Promise.all([page.waitForURL(/\/staff\/sign-in\/code$/), page.click('main button[type=submit]')]);
  await axe(page, `${name}-code`);
  await shot(page, `${name}-code`);
  const [, code] = await nextSms(tail, /(\d{6})/, seen);
  await page.fill('#code', code);
  await Promise.all([page.waitForURL(/\/staff$/), page.click('main button[type=submit]')]);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--host-resolver-rules=MAP *.localhost 127.0.0.1', '--no-sandbox', '--disable-gpu', '--disable-quic',
    '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
// Every console message about the Content-Security-Policy on Miz's pages is a failure (the
// identity provider's own pages are not ours to judge).
const cspViolations = [];
const newContext = browser.newContext.bind(browser);
browser.newContext = async (options) => {
  const ctx = await newContext(options);
  ctx.on('console', (m) => {
    const at = m.page()?.url() ?? '';
    if (/content security policy/i.test(m.text()) && at.includes('.localhost')) cspViolations.push(`${at}: ${m.text()}`);
  });
  return ctx;
};
const seen = new Set((await outbox()).map((m) => m.text));
const stamp = Date.now().toString().slice(-6);
const clerkUser = `clerk.${stamp}`;
const clerkMobile = `0913${stamp.slice(0, 3)}${stamp.slice(3)}0`.slice(0, 11);
const clerkTail = clerkMobile.slice(-7);
const headUser = `head.${stamp}`;
const clerkPassword = 'باغ-انار-پاییزی-۱۴۰۵';

try {
  // The admin, at a desktop.
  const admin = await (await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'fa-IR' })).newPage();
  await signIn(admin, 'admin-isfahan', '0000001', seen, 'admin');
  check(/تیم میز خدمت/.test(await admin.textContent('main')), 'the admin finds the team page from the staff home');
  await Promise.all([admin.waitForURL(/\/staff\/team$/), admin.click('text=تیم میز خدمت')]);
  await axe(admin, 'team');
  await shot(admin, 'team');
  const invite = async (name, mobile, username, role, unit) => {
    await admin.fill('#full_name', name);
    await admin.fill('#mobile', mobile);
    await admin.fill('#username', username);
    await admin.selectOption('#role', role);
    await admin.selectOption('#unit_id', { label: unit });
    await Promise.all([admin.waitForURL(/done=invited/), admin.click('form[action="/staff/team"] button[type=submit]')]);
  };
  await invite('سارا نوری', clerkMobile, clerkUser, 'desk_staff', 'شهرسازی');
  check(new RegExp(`دعوت‌نامه عضو ${clerkUser} ساخته شد`).test(await admin.textContent('main')), 'the invitation is confirmed on the page, naming the member');
  await invite('بهرام شریفی', `0914${stamp}1`.slice(0, 11), headUser, 'department_head', 'درآمد');
  // A bad mobile gets an error summary that links to the field, and nothing is made.
  await admin.fill('#full_name', 'نادرست');
  await admin.fill('#mobile', '12345');
  await admin.fill('#username', `bad.${stamp}`);
  await admin.click('form[action="/staff/team"] button[type=submit]');
  check(await admin.isVisible('.error-summary a[href="#mobile"]'), 'a bad mobile shows an error summary linked to the field');
  await shot(admin, 'team-error');

  // The clerk, on a phone: the SMS invitation, a password, signed in.
  const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, locale: 'fa-IR' });
  let clerk = await phone.newPage();
  const [link] = await nextSms(clerkTail, /http:\/\/\S+\/staff\/welcome\/[0-9a-f]+/, seen);
  await clerk.goto(link);
  await axe(clerk, 'welcome');
  await shot(clerk, 'welcome-360');
  await clerk.fill('#password', '12345678');
  await clerk.fill('#password_confirm', '12345678');
  await clerk.click('main button[type=submit]');
  check(await clerk.isVisible('.error-summary a[href="#password"]'), 'a weak password is refused with a summary');
  await clerk.fill('#password', clerkPassword);
  await clerk.fill('#password_confirm', clerkPassword);
  await Promise.all([clerk.waitForURL(/\/staff$/), clerk.click('main button[type=submit]')]);
  await shot(clerk, 'home-360');
  const overflow = await clerk.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(overflow <= 1, `the clerk's home fits a 360-px phone (overflow ${overflow}px)`);
  await Promise.all([clerk.waitForURL(/\/$/), clerk.click('text=خروج')]);

  // The next day: password + SMS code.
  clerk = await (await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, locale: 'fa-IR' })).newPage();
  await signIn(clerk, clerkUser, clerkTail, seen, 'clerk', clerkPassword);
  check(true, 'the clerk signs in with password and SMS code');

  // Their unit's request: they act on it; the other unit's: 403; settings: 403.
  const links = async (page) => page.$$eval('a[href^="/staff/requests/"]', (as) => [...new Set(as.map((a) => a.getAttribute('href')))]);
  await clerk.goto(url('/staff/inbox'));
  await axe(clerk, 'inbox');
  await shot(clerk, 'inbox-360');
  const wide = await clerk.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(wide <= 1, `the inbox fits a 360-px phone; its table scrolls inside its card (overflow ${wide}px)`);
  const mine = await links(clerk);
  await admin.goto(url('/staff/inbox'));
  const all = await links(admin);
  const other = all.filter((h) => !mine.includes(h));
  check(mine.length > 0, `the clerk's inbox lists their unit's request (${mine.length})`);
  check(other.length > 0, `the other unit's request is not in the clerk's inbox (${other.length} hidden)`);
  if (mine.length) {
    await clerk.goto(url(mine[0]));
    await axe(clerk, 'request');
    const act = clerk.locator('form[action$="/act"] button').first();
    if (await act.count()) {
      await Promise.all([clerk.waitForLoadState('load'), act.click()]);
      check(!/اجازه ندارید/.test(await clerk.textContent('main')), 'the clerk works a request of their unit');
    } else {
      fail('no workflow action offered to the clerk on their unit\'s request');
    }
  }
  if (other.length) {
    const resp = await clerk.goto(url(other[0]));
    check(resp.status() === 403 && /اجازه/.test(await clerk.textContent('main')), `another unit's request is refused with a Persian page (${resp.status()})`);
    await shot(clerk, 'forbidden-360');
  }
  const settings = await clerk.goto(url('/staff/settings'));
  check(settings.status() === 403, `the settings are refused to the clerk (${settings.status()})`);

  // The admin deactivates the clerk; the clerk's next click finds the session gone.
  await admin.goto(url('/staff/team'));
  const row = admin.locator('tr', { hasText: clerkUser });
  await Promise.all([admin.waitForURL(/done=deactivated/), row.locator('text=غیرفعال کردن').click()]);
  await shot(admin, 'team-deactivated');
  const after = await clerk.goto(url('/staff/inbox'));
  check(after.status() === 401 && (await clerk.isVisible('#username')), `the deactivated clerk's session ends at once (${after.status()})`);

  // The admin's own account and the activity log.
  await admin.goto(url('/staff/account'));
  await axe(admin, 'account');
  await admin.goto(url('/staff/activity'));
  await axe(admin, 'activity');
  await shot(admin, 'activity');
  check(/غیرفعال‌سازی عضو/.test(await admin.textContent('main')), 'the activity log shows the deactivation');

  // Single sign-on: the admin connects the municipality's identity provider; the department
  // head accepts the SMS invitation with it on a phone, and signs in with it the next day.
  if (issuer) {
    await admin.goto(url('/staff/settings'));
    await Promise.all([admin.waitForURL(/\/staff\/settings\/sso$/), admin.click('text=ورود یکپارچه کارکنان (SSO)')]);
    await axe(admin, 'sso-settings');
    await admin.fill('#issuer', issuer);
    await admin.fill('#client_id', 'miz-isfahan');
    await admin.fill('#client_secret', 'isfahan-demo-secret');
    await admin.fill('#label', 'ورود با حساب شهرداری اصفهان');
    await admin.check('input[name=enabled]');
    await Promise.all([admin.waitForURL(/done=saved/), admin.click('main button[type=submit]')]);
    await shot(admin, 'sso-settings');
    check(/سامانه ورود یکپارچه پاسخ درست داد/.test(await admin.textContent('main')), 'the admin saves the identity provider after a live check');
    const head = await (await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, locale: 'fa-IR' })).newPage();
    const headTail = `0914${stamp}1`.slice(0, 11).slice(-7);
    const [invitation] = await nextSms(headTail, /http:\/\/\S+\/staff\/welcome\/[0-9a-f]+/, seen);
    await head.goto(invitation);
    await axe(head, 'welcome-sso');
    await shot(head, 'welcome-sso-360');
    await Promise.all([head.waitForURL(/\/interaction\//), head.click('text=ورود با حساب شهرداری اصفهان و پذیرش دعوت')]);
    await head.fill('input[name=login]', 'b.sharifi');
    await head.fill('input[name=password]', 'idp-demo-pass');
    await Promise.all([head.waitForURL(/\/staff$/), head.click('button[type=submit]')]);
    check(/بهرام شریفی/.test(await head.textContent('body')), 'the head accepts the invitation with the identity provider and lands on the staff home');
    await Promise.all([head.waitForURL(/\/$/), head.click('text=خروج')]);
    // The next day, in a fresh browser: the sign-in page's button, the provider's form, home.
    const tomorrow = await (await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, locale: 'fa-IR' })).newPage();
    await tomorrow.goto(url('/staff/sign-in'));
    await axe(tomorrow, 'sign-in-sso');
    await shot(tomorrow, 'sign-in-sso-360');
    await Promise.all([tomorrow.waitForURL(/\/interaction\//), tomorrow.click('text=ورود با حساب شهرداری اصفهان')]);
    await tomorrow.fill('input[name=login]', 'b.sharifi');
    await tomorrow.fill('input[name=password]', 'idp-demo-pass');
    await Promise.all([tomorrow.waitForURL(/\/staff$/), tomorrow.click('button[type=submit]')]);
    check(/بهرام شریفی/.test(await tomorrow.textContent('body')), 'the head signs in the next day with the identity provider, no SMS code');
    await tomorrow.goto(url('/staff/account'));
    await axe(tomorrow, 'account-sso');
    await shot(tomorrow, 'account-sso-360');
    check(/حساب سازمانی شما پیوند خورده است/.test(await tomorrow.textContent('main')), 'the head\'s account page shows the link');
  } else {
    console.log('note single sign-on walk skipped: DESK_OIDC_ISSUER is not set');
  }
} catch (e) {
  fail(`journey stopped: ${e.message.split('\n')[0]}`);
}

await browser.close();
for (const v of cspViolations.slice(0, 5)) fail(`CSP violation: ${v}`);
check(cspViolations.length === 0, `no CSP violation on any page of the journey (${cspViolations.length})`);
console.log(`team journey: ${failures.length} failure(s), ${axeRuns} axe runs`);
process.exit(failures.length ? 1 : 0);
