// Browser checks of the citizen pages in real headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core; no browser is ever downloaded):
//
//  - every page of every municipality passes axe-core (WCAG 2.0/2.1 A and AA rules) with no
//    `serious` or `critical` violation (at the desktop viewport; home and the service card also
//    at the mobile one);
//  - every page shows its own municipality's name and never another's (visible text, title and
//    HTML source are searched for the other municipalities' Persian names, read from their home
//    pages' headers);
//  - municipalities with different themes render differently (pairs from DESK_THEMED_PAIRS):
//    their home pages, with all text made transparent so that the names alone don't count,
//    differ in pixels, or their computed styles differ;
//  - full-page screenshots of home and of the first service card, desktop (1280x900) and mobile
//    (390x844), go to target/browser/<host>-<page>-<viewport>.png.
//
// Environment:
//   DESK_URL_PORT      port of a running `desk demo` (default 8080)
//   DESK_HOSTS         comma-separated municipality hosts (default: the demo's three); arguments
//                      on the command line take precedence
//   DESK_THEMED_PAIRS  comma-separated host pairs `a:b` that must render differently
//                      (default isfahan.localhost:najafabad.localhost,isfahan.localhost:kashan.localhost;
//                      empty string: no theme assertion)
//   CHROMIUM           browser executable (default /usr/bin/chromium)
//
// Exits non-zero on any failure. Run it through scripts/browser-test, which starts the demo.

import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';

process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = '1';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const shotDir = path.resolve(here, '../../target/browser');

const port = process.env.DESK_URL_PORT || '8080';
const hosts = process.argv.length > 2
  ? process.argv.slice(2)
  : (process.env.DESK_HOSTS || 'isfahan.localhost,najafabad.localhost,kashan.localhost')
      .split(',').map((h) => h.trim()).filter(Boolean);
const pairs = (process.env.DESK_THEMED_PAIRS ?? 'isfahan.localhost:najafabad.localhost,isfahan.localhost:kashan.localhost')
  .split(',').map((p) => p.trim()).filter(Boolean).map((p) => p.split(':').map((h) => h.trim()));
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

const DESKTOP = { width: 1280, height: 900 };
const MOBILE = { width: 390, height: 844 };
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const BLOCKING = new Set(['serious', 'critical']);
// A pixel counts as different when a channel differs by more than this (anti-aliasing noise).
const CHANNEL_TOLERANCE = 16;
// Text-free home pages of two different themes must differ in at least this share of pixels.
const MIN_DIFF_SHARE = 0.005;

const failures = [];
const fail = (msg) => { failures.push(msg); console.log(`FAIL ${msg}`); };
const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
const url = (host, p) => `http://${host}:${port}${p}`;

for (const [a, b] of pairs) {
  if (!a || !b) { console.error(`DESK_THEMED_PAIRS: bad pair ${a}:${b}`); process.exit(2); }
  for (const h of [a, b]) {
    if (!hosts.includes(h)) { console.error(`DESK_THEMED_PAIRS names ${h}, which is not among the hosts ${hosts.join(', ')}`); process.exit(2); }
  }
}

mkdirSync(shotDir, { recursive: true });

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    // Chromium resolves *.localhost to loopback itself; this makes it explicit.
    '--host-resolver-rules=MAP *.localhost 127.0.0.1',
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

// The computed styles that make up a page's look (first element of each selector).
const STYLE_SELECTORS = ['html', 'body', 'header', 'header a', 'main', 'h1', 'h2', 'main a', 'button', 'input', 'footer', 'footer a'];
const STYLE_PROPS = ['backgroundColor', 'backgroundImage', 'color', 'fontFamily', 'fontSize', 'fontWeight',
  'borderTopColor', 'borderTopWidth', 'borderTopLeftRadius', 'boxShadow', 'paddingTop', 'textAlign', 'maxWidth'];

const results = []; // { host, page, url, text, html }
const homes = {};   // host -> { name, styles, notext: Buffer }
const shots = [];
let axeViolations = 0;
let axeRuns = 0;
const axeFindings = new Map(); // one entry per rule and elements, with the pages it was seen on

async function open(page, host, p) {
  const resp = await page.goto(url(host, p), { waitUntil: 'load' });
  const status = resp ? resp.status() : 0;
  if (status !== 200) fail(`${host}${p}: HTTP ${status}`);
  await page.evaluate(() => document.fonts.ready);
  return status;
}

async function axe(page, host, p) {
  axeRuns += 1;
  // Evaluated by the browser's tools, not injected into the page: the page's CSP (which
  // allows only its own nonce) stays whole, and axe still runs.
  await page.evaluate(axeSource);
  // Inline event handlers never run under the page's CSP: none may be left in the markup.
  const handlers = await page.evaluate(() => [...document.querySelectorAll('*')]
    .flatMap((el) => [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `<${el.localName} ${a.name}>`)));
  if (handlers.length) fail(`${page.url()}: inline event handlers the CSP blocks: ${handlers.join(', ')}`);
  const res = await page.evaluate(
    (tags) => window.axe.run(document, { runOnly: { type: 'tag', values: tags }, resultTypes: ['violations'] })
      .then((r) => r.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.map((n) => ({ target: n.target.join(' '), html: n.html, summary: n.failureSummary })),
      }))),
    AXE_TAGS,
  );
  for (const v of res) {
    const targets = v.nodes.slice(0, 4).map((n) => n.target).join(' | ');
    const line = `axe ${host}${p}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.length} element(s): ${targets}`;
    if (BLOCKING.has(v.impact)) {
      axeViolations += 1;
      console.log(`FAIL ${line}`);
      for (const n of v.nodes.slice(0, 3)) {
        console.log(`       ${n.html.slice(0, 160)}`);
        if (n.summary) console.log(`       ${n.summary.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
      const key = `${v.id} (${v.impact}) on ${targets}`;
      if (!axeFindings.has(key)) axeFindings.set(key, { v, pages: [] });
      axeFindings.get(key).pages.push(`${host}${p}`);
    } else {
      console.log(`note ${line}`);
    }
  }
}

async function record(page, host, p) {
  const { text, title } = await page.evaluate(() => ({ text: document.body.innerText, title: document.title }));
  results.push({ host, page: p, text: norm(`${title} ${text}`), html: norm(await page.content()) });
}

async function screenshot(page, host, name) {
  const file = path.join(shotDir, `${host}-${name}.png`);
  const buf = await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
  return buf;
}

// The municipality's name, as its header shows it ("میز خدمت <name>" in the base theme).
async function readName(page) {
  return page.evaluate(() => {
    const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
    const strip = (s) => clean(s).replace(/^(به\s+)?میز خدمت(\s+الکترونیکی)?\s*/, '').replace(/\s*خوش آمدید$/, '');
    const header = document.querySelector('header strong, header h1, header a');
    const h1 = document.querySelector('h1');
    return { header: header ? strip(header.textContent) : '', h1: h1 ? strip(h1.textContent) : '' };
  });
}

async function styleFingerprint(page) {
  return page.evaluate(([sels, props]) => {
    const out = {};
    for (const s of sels) {
      const el = document.querySelector(s);
      if (!el) { out[s] = null; continue; }
      const cs = getComputedStyle(el);
      out[s] = Object.fromEntries(props.map((p) => [p, cs[p]]));
    }
    return out;
  }, [STYLE_SELECTORS, STYLE_PROPS]);
}

// Every console message about the Content-Security-Policy on our pages is a failure: the
// theme's styles carry the answer's nonce, and nothing else should need an exception.
const cspViolations = [];
const watchCsp = (ctx) => {
  ctx.on('console', (m) => {
    if (/content security policy/i.test(m.text())) cspViolations.push(`${m.page()?.url()}: ${m.text()}`);
  });
  return ctx;
};
const desktop = watchCsp(await browser.newContext({ viewport: DESKTOP, locale: 'fa-IR' }));
const mobile = watchCsp(await browser.newContext({ viewport: MOBILE, deviceScaleFactor: 1, isMobile: true, hasTouch: true, locale: 'fa-IR' }));

try {
  for (const host of hosts) {
    const page = await desktop.newPage();
    const mpage = await mobile.newPage();
    console.log(`== ${host}`);

    // Home: name, look, screenshots, axe.
    await open(page, host, '/');
    const { header, h1 } = await readName(page);
    const name = header || h1;
    if (!name) fail(`${host}/: cannot read the municipality's name from the header or <h1>`);
    else if (h1 && !h1.includes(name) && !name.includes(h1)) console.log(`note ${host}/: header says «${header}», <h1> says «${h1}»`);
    console.log(`   name: ${name}`);
    await screenshot(page, host, 'home-desktop');
    const styles = await styleFingerprint(page);
    // A constructed style sheet: no inline <style> that the page's CSP would (rightly) refuse.
    await page.evaluate(() => {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync('*, *::before, *::after { color: transparent !important; text-shadow: none !important; caret-color: transparent !important; } ::placeholder { color: transparent !important; }');
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    });
    const notext = await page.screenshot({ fullPage: true });
    await page.reload({ waitUntil: 'load' });
    homes[host] = { name, styles, notext };
    await record(page, host, '/');
    await axe(page, host, '/');
    await open(mpage, host, '/');
    await screenshot(mpage, host, 'home-mobile');
    await axe(mpage, host, '/ (mobile)');

    // The other pages.
    for (const p of ['/services', null, '/faq', '/charter', '/sla', '/developers']) {
      let target = p;
      if (p === null) {
        // The first service card linked from /services (the page is still open).
        const href = await page.evaluate(() => {
          const a = [...document.querySelectorAll('main a[href^="/services/"]')]
            .find((el) => /^\/services\/[^/?#]+$/.test(el.getAttribute('href')));
          return a ? a.getAttribute('href') : null;
        });
        if (!href) { fail(`${host}/services: no service card links to /services/{code}`); continue; }
        target = href;
      }
      await open(page, host, target);
      await record(page, host, target);
      await axe(page, host, target);
      if (p === null) {
        await screenshot(page, host, 'service-desktop');
        await open(mpage, host, target);
        await screenshot(mpage, host, 'service-mobile');
        await axe(mpage, host, `${target} (mobile)`);
      }
    }
    await page.close();
    await mpage.close();
  }

  // Own name on every page, never another municipality's.
  console.log('== names');
  for (const r of results) {
    const own = homes[r.host]?.name;
    if (own && !r.text.includes(own)) fail(`${r.host}${r.page}: its own name «${own}» is not on the page`);
    for (const [other, { name }] of Object.entries(homes)) {
      if (other === r.host || !name || name === own) continue;
      if (r.text.includes(name)) fail(`${r.host}${r.page}: shows «${name}», the name of ${other}`);
      else if (r.html.includes(name)) fail(`${r.host}${r.page}: its HTML contains «${name}», the name of ${other}`);
    }
  }
  for (const [key, { v, pages }] of axeFindings) {
    failures.push(`axe ${key}: ${v.help} (${v.helpUrl}) — on ${pages.length} page(s): ${pages.join(', ')}`);
  }

  const names = Object.values(homes).map((h) => h.name);
  if (new Set(names).size !== names.length) fail(`two municipalities have the same name: ${names.join(', ')}`);

  // Themed pairs render differently.
  console.log('== themes');
  for (const [a, b] of pairs) {
    const A = homes[a]; const B = homes[b];
    if (!A || !B) { fail(`themes ${a} vs ${b}: a home page was not rendered`); continue; }
    const share = pixelDiffShare(A.notext, B.notext);
    const styleDiffs = [];
    for (const s of STYLE_SELECTORS) {
      const x = A.styles[s]; const y = B.styles[s];
      if (!x || !y) { if (x !== y) styleDiffs.push(`${s}: present on ${x ? a : b} only`); continue; }
      for (const p of STYLE_PROPS) if (x[p] !== y[p]) styleDiffs.push(`${s} ${p}: ${x[p]} vs ${y[p]}`);
    }
    const pct = (share * 100).toFixed(2);
    if (share >= MIN_DIFF_SHARE || styleDiffs.length > 0) {
      console.log(`ok   themes ${a} vs ${b}: ${pct}% of text-free pixels differ; ${styleDiffs.length} computed style(s) differ`);
      for (const d of styleDiffs.slice(0, 6)) console.log(`       ${d}`);
    } else {
      fail(`themes ${a} vs ${b}: home pages render alike (${pct}% of text-free pixels differ, `
        + `below ${(MIN_DIFF_SHARE * 100).toFixed(1)}%; computed styles identical, e.g. header background `
        + `${A.styles.header?.backgroundColor}) — expected different themes`);
    }
  }
} finally {
  await browser.close();
}
for (const v of cspViolations.slice(0, 5)) failures.push(`CSP violation: ${v}`);
console.log(`CSP violations on the pages: ${cspViolations.length}`);

// Share of pixels that differ between two PNGs; area outside the smaller one counts as different.
function pixelDiffShare(bufA, bufB) {
  const a = PNG.sync.read(bufA); const b = PNG.sync.read(bufB);
  const w = Math.max(a.width, b.width); const h = Math.max(a.height, b.height);
  let diff = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (x >= a.width || x >= b.width || y >= a.height || y >= b.height) { diff++; continue; }
      const i = (y * a.width + x) * 4; const j = (y * b.width + x) * 4;
      if (Math.abs(a.data[i] - b.data[j]) > CHANNEL_TOLERANCE
        || Math.abs(a.data[i + 1] - b.data[j + 1]) > CHANNEL_TOLERANCE
        || Math.abs(a.data[i + 2] - b.data[j + 2]) > CHANNEL_TOLERANCE) diff++;
    }
  }
  return diff / (w * h);
}

console.log('== summary');
console.log(`pages checked: ${results.length} on ${hosts.length} municipalities (${hosts.join(', ')}), port ${port}`);
console.log(`axe runs: ${axeRuns} (every page at 1280x900, home and service card also at 390x844); serious/critical violations: ${axeViolations} (${axeFindings.size} distinct)`);
console.log(`screenshots (${shots.length}):`);
for (const s of shots) console.log(`  ${path.relative(process.cwd(), s)}`);
if (failures.length) {
  console.log(`browser checks: ${failures.length} failure(s):`);
  for (const f of failures) console.log(`  - ${f}`);
  process.exit(1);
}
console.log('browser checks: all passed');
