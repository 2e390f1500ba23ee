// Headless-Chromium check of the Patronus dashboard, run by scripts/api-check.
//
//   API_URL=http://127.0.0.1:8080 API_TOKEN=... node scripts/lib/dashboard-check.cjs [--events] [--insecure] [--screenshot FILE]
//
// Loads /, enters the token in the page's form, waits for the sites and
// paths to render, checks that "last updated" changes (the page updates
// live), that the event list is fed by the stream (with --events: that an
// event arrives), that the page logged no errors, and that a wrong token is
// refused. Uses the system Chromium through playwright-core (no browser
// download). The token comes from the environment, never from argv.
"use strict";

const { chromium } = require("playwright-core");
const fs = require("fs");
const os = require("os");
const path = require("path");

const base = (process.env.API_URL || "").replace(/\/$/, "");
const token = process.env.API_TOKEN || "";
const args = process.argv.slice(2);
const wantEvents = args.includes("--events");
const insecure = args.includes("--insecure");
const shotAt = args.indexOf("--screenshot");
const screenshot = shotAt >= 0 ? args[shotAt + 1] : null;
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

if (!base || !token) {
  console.error("dashboard-check: set API_URL and API_TOKEN");
  process.exit(2);
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${err.message.split("\n")[0]}`);
  }
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "patronus-dashboard-"));
  // launchPersistentContext: a fresh --user-data-dir of our own (Playwright
  // refuses the flag in args and sets it from this directory).
  // Chromium's own log goes to stderr, which Playwright keeps in the call
  // log of a failed launch. A launch that does not answer is a failure;
  // before it is reported, the Chromium processes' state says where they
  // were stuck (seen once, under scripts/test --under-load: no answer on
  // the DevTools pipe for 180 s, not reproduced since).
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      ignoreHTTPSErrors: insecure,
      viewport: { width: 1400, height: 1000 },
      timeout: 120000,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--enable-logging=stderr",
      ],
    });
  } catch (err) {
    try {
      const ps = require("child_process").execSync(
        "ps -eo pid,ppid,stat,wchan:32,etime,args --sort=pid | grep -E '[c]hrom' | cut -c1-220",
        { encoding: "utf8" },
      );
      console.error(`dashboard-check: Chromium processes at the failed launch:\n${ps}`);
    } catch (_) {
      console.error("dashboard-check: no Chromium process left at the failed launch");
    }
    throw err;
  }
  const errors = [];
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => { if (m.type() === "error") errors.push(`console: ${m.text()}`); });

    await check("the page loads and asks for a token", async () => {
      const res = await page.goto(`${base}/`, { waitUntil: "domcontentloaded" });
      if (!res || res.status() !== 200) throw new Error(`HTTP ${res && res.status()}`);
      await page.waitForSelector("#login:not([hidden]) #token", { timeout: 10000 });
    });

    await check("a wrong token is refused", async () => {
      await page.fill("#token", "not-the-token");
      await page.click("#login-submit");
      await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("refused"), null, { timeout: 10000 });
      // The 401 the page provoked on purpose is not a page error.
      errors.length = 0;
    });

    await check("the token opens the dashboard", async () => {
      await page.fill("#token", token);
      await page.click("#login-submit");
      await page.waitForSelector("#dashboard:not([hidden])", { timeout: 10000 });
      if (page.url().includes(token)) throw new Error("the token is in the URL");
    });

    await check("sites (peers) render", async () => {
      await page.waitForSelector("#sites .site[data-peer]", { timeout: 15000 });
      const peers = await page.$$eval("#sites .site[data-peer]", (els) => els.map((e) => e.dataset.peer));
      console.log(`     peers: ${peers.join(", ")}`);
    });

    await check("paths render with a health colour", async () => {
      await page.waitForSelector("#paths tbody tr[data-peer][data-path]", { timeout: 15000 });
      const rows = await page.$$eval("#paths tbody tr[data-peer][data-path]",
        (els) => els.map((e) => `${e.dataset.peer}/${e.dataset.path}=${e.dataset.health}`));
      if (!rows.every((r) => /=(ok|warn|bad)$/.test(r))) throw new Error(`rows: ${rows}`);
      console.log(`     paths: ${rows.join(" ")}`);
    });

    await check("'last updated' changes (live updates)", async () => {
      const first = await page.getAttribute("#last-updated", "data-updated");
      await page.waitForFunction((v) => {
        const now = document.querySelector("#last-updated").dataset.updated;
        return now !== v && now !== "0";
      }, first, { timeout: 15000 });
    });

    await check("throughput per port shows rates", async () => {
      await page.waitForFunction(() => [...document.querySelectorAll("#ports tbody tr[data-port] td.num")]
        .some((td) => /\/s$/.test(td.textContent)), null, { timeout: 15000 });
    });

    await check("events come from the live stream", async () => {
      await page.waitForFunction(() => document.querySelector("#events-mode").dataset.mode === "stream",
        null, { timeout: 15000 });
      if (wantEvents) {
        const before = await page.$$eval("#events li[data-seq]", (els) => Math.max(0, ...els.map((e) => +e.dataset.seq)));
        await page.waitForFunction((b) => [...document.querySelectorAll("#events li[data-seq]")]
          .some((e) => +e.dataset.seq > b), before, { timeout: 15000 });
      }
    });

    await check("no errors in the page", async () => {
      if (errors.length) throw new Error(errors.join("; "));
    });

    if (screenshot) {
      await page.screenshot({ path: screenshot, fullPage: true });
      console.log(`     screenshot: ${screenshot}`);
    }
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(`dashboard: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})().catch((err) => {
  console.error(`dashboard-check: ${err.stack || err}`);
  process.exit(1);
});
