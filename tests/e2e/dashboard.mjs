// Drives Debian's headless Chromium through a running `waymark serve` as a user would:
// the public status page without login, then log in, acknowledge an incident, the overview,
// a journey, a run's waterfall and the dependency map. Screenshots go to $ARTIFACTS; any console error,
// page error or failed check makes the exit code 1. Run by tests/it/dashboard.rs.
//
// Environment: BASE (http://127.0.0.1:port), USERNAME, PASSWORD, JOURNEY (a public journey
// with an open incident), INCIDENT (its id), ARTIFACTS (a directory), CHROMIUM (executable).

import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("BASE");
const artifacts = env("ARTIFACTS");
const problems = [];
const check = (ok, what) => {
  if (!ok) problems.push(what);
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error on ${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
  const shot = (name) => page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });

  // The public status page, no login.
  let res = await page.goto(`${base}/`);
  check(res.status() === 200, "status page answers 200 without login");
  check((await page.textContent("h1")).includes("Some systems are down"), "the overall state says what is down");
  check(await page.isVisible(`h3:text-is("${env("JOURNEY")}")`), "the public journey is listed");
  check((await page.locator("ol.bars li").count()) >= 90, "90 uptime bars");
  check(!(await page.content()).includes("internal"), "a private journey is not on the status page");
  check(res.headers()["content-security-policy"]?.includes("frame-ancestors 'none'"), "a CSP header");
  await shot("status-page");

  // The dashboard sends an anonymous visitor to log in, then back.
  await page.goto(`${base}/app/incidents/${env("INCIDENT")}`);
  check(page.url().includes("/app/login"), "the dashboard asks to log in");
  await page.fill("#username", env("USERNAME"));
  await page.fill("#password", "wrong password");
  await page.click("button[type=submit]");
  check(await page.isVisible("text=Wrong user name or password."), "a wrong password is refused");
  await page.fill("#username", env("USERNAME"));
  await page.fill("#password", env("PASSWORD"));
  await Promise.all([page.waitForURL(`**/app/incidents/${env("INCIDENT")}`), page.click("button[type=submit]")]);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "waymark_session");
  check(session && session.httpOnly && session.secure && session.sameSite === "Lax", "session cookie is HttpOnly, Secure, SameSite=Lax");

  // Acknowledge the incident.
  check((await page.textContent("#incident-state")).trim() === "open", "the incident is open");
  await shot("incident-open");
  await Promise.all([page.waitForURL(/done=ack/), page.click("button:text-is('Acknowledge')")]);
  check((await page.textContent("#incident-state")).trim() === "acknowledged", "acknowledged from the page");
  check(await page.isVisible(`text=acknowledged by ${env("USERNAME")}`), "who acknowledged is shown");
  await shot("incident-acknowledged");

  // Overview, then the journey, then one of its runs.
  await page.click("nav.app >> text=Overview");
  check(await page.isVisible("h1:text-is('Overview')"), "overview");
  check((await page.locator("table.data tbody tr").count()) === 3, "every journey in the overview");
  check(await page.isVisible("table.data >> text=internal"), "private journeys too");
  check((await page.locator("table.data svg.spark").count()) >= 1, "p95 sparklines");
  await shot("overview");
  await page.selectOption("#location", "local");
  await Promise.all([page.waitForURL(/location=local/), page.click("form.filters button")]);
  check((await page.locator("table.data tbody tr").count()) === 3, "every journey ran from location local");
  await page.goto(`${base}/app?location=elsewhere`);
  check(await page.isVisible("text=No journey matches."), "a location filter that matches nothing");
  await page.click("nav.app >> text=Overview");
  await page.click(`table.data >> text=${env("JOURNEY")}`);
  check(await page.isVisible(`h1:has-text("${env("JOURNEY")}")`), "journey page");
  check(await page.isVisible("figure.chart img"), "the journey's latency chart");
  check(
    (await page.locator("table.locations tbody tr").count()) === 1 &&
      (await page.isVisible("table.locations >> text=local")),
    "the journey's results by location",
  );
  await shot("journey");
  await page.click("h2:text-is('Recent runs') + table a >> nth=0");
  check(await page.isVisible("svg.waterfall"), "the run's waterfall");
  check((await page.locator("svg.waterfall rect.ph").count()) >= 1, "waterfall bars");
  await shot("run");

  // The dependency map: the failing journey's host is marked failing, in words too.
  await page.click("nav.app >> text=Dependencies");
  check(await page.isVisible("svg.depmap"), "dependency map");
  check((await page.locator("svg.depmap g.node.failing").count()) >= 2, "failing journey and host marked");
  check((await page.textContent("svg.depmap")).includes("✖"), "failing said with an icon, not colour alone");
  await shot("dependencies");

  // Digests are the dashboard's pages too (none is made in this short test).
  await page.click("nav.app >> text=Digests");
  check(await page.isVisible("h1:text-is('Feedback digests')"), "the digests page, logged in");

  // The node list: this single node, alive and leading.
  await page.goto(`${base}/app`);
  await page.click("nav.app >> text=Nodes");
  const node = page.locator("table.data tbody tr").first();
  const row = await node.textContent();
  check(row.includes("(this node)") && row.includes("alive") && row.includes("leader"), `this node leads: ${row}`);
  await shot("nodes");

  // Keyboard: on a freshly loaded page, the first Tab reaches the skip link.
  await page.goto(`${base}/app`);
  await page.locator("body").focus();
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement?.className === "skip"), "keyboard reaches the skip link first");

} finally {
  await browser.close();
}

if (problems.length) {
  console.error(`${problems.length} problem(s):\n${problems.join("\n")}`);
  process.exit(1);
}
console.log("dashboard: every check passed");
