// ontovec's built-in page in a real browser: Debian's headless Chromium driven by
// puppeteer-core against a live server on the fixtures (scripts/browser.sh). Search "heart
// attack" and see ICD-10-CM results, open a concept, follow a parent, open a shared URL, use
// the keyboard, paste a note and see codes, open a trained model's card and see the pictures its
// trainer drew ($ONTOVEC_CARD_MODEL, trained by scripts/fhir.sh). A screenshot of each step
// goes to $SCREENSHOTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import puppeteer from "puppeteer-core";

const URL = process.env.ONTOVEC_URL;
const SHOTS = process.env.SCREENSHOTS;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
let browser, page;
const pageErrors = [];

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 760 });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && pageErrors.push(m.text()));
  // Nothing may be loaded from anywhere but the server itself.
  await page.setRequestInterception(true);
  page.on("request", (r) => (r.url().startsWith(URL) ? r.continue() : (pageErrors.push(`external request ${r.url()}`), r.abort())));
});

after(async () => {
  await browser?.close();
});

const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
const text = (sel) => page.$eval(sel, (e) => e.textContent);

test("type 'heart attack' and see ICD-10-CM results", async () => {
  await page.goto(`${URL}/`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#q");
  // Over every system the UMLS "Heart Attack" synonym comes first; ICD-10-CM is one filter away.
  await page.type("#q", "heart attack", { delay: 20 });
  await page.waitForSelector(".hit", { timeout: 20000 });
  await page.select("#system", "ICD10CM");
  await page.waitForFunction(() => document.querySelector(".hit")?.dataset.system === "ICD10CM", { timeout: 20000 });
  await page.waitForSelector('.hit[data-system="ICD10CM"]', { timeout: 20000 });
  const hits = await page.$$eval(".hit", (els) => els.map((e) => ({ system: e.dataset.system, code: e.dataset.code, text: e.textContent })));
  assert.ok(hits.slice(0, 5).some((h) => h.system === "ICD10CM" && h.code.startsWith("I21")), JSON.stringify(hits.slice(0, 5)));
  // Which side found each hit is shown.
  assert.ok(hits.some((h) => /vector #\d+/.test(h.text)), "vector ranks shown");
  assert.equal(new globalThis.URL(page.url()).search, "?q=heart+attack&system=ICD10CM");
  await shot("01-search-heart-attack");
});

test("the system filter keeps only that system", async () => {
  await page.select("#system", "HPO");
  await page.waitForFunction(() => [...document.querySelectorAll(".hit")].every((h) => h.dataset.system === "HPO") && document.querySelectorAll(".hit").length > 0, { timeout: 20000 });
  assert.match(page.url(), /system=HPO/);
  await page.select("#system", "ICD10CM");
  await page.waitForFunction(() => document.querySelector(".hit")?.dataset.system === "ICD10CM", { timeout: 20000 });
});

test("open a concept, then follow a parent", async () => {
  const first = await page.$('.hit[data-system="ICD10CM"] a.title');
  const code = await first.evaluate((a) => a.closest(".hit").dataset.code);
  await first.click();
  await page.waitForSelector("#concept-title");
  assert.equal(decodeURIComponent(new globalThis.URL(page.url()).pathname), `/concept/ICD10CM/${code}`);
  assert.match(await text("#concept-title"), new RegExp(code.replace(".", "\\.")));
  await page.waitForFunction(() => !document.querySelector(".related")?.textContent.includes("Loading"), { timeout: 20000 });
  await shot("02-concept");
  const parent = await page.$(".parents a");
  assert.ok(parent, "the concept has a parent link");
  const parentCode = await parent.evaluate((a) => a.dataset.code);
  await parent.click();
  await page.waitForFunction((c) => document.querySelector("#concept-title")?.textContent.includes(c), {}, parentCode);
  assert.equal(decodeURIComponent(new globalThis.URL(page.url()).pathname), `/concept/ICD10CM/${parentCode}`);
  const children = await page.$$eval(".children a", (as) => as.map((a) => a.dataset.code));
  assert.ok(children.includes(code), `${parentCode}'s children include ${code}`);
  await shot("03-parent");
  await page.goBack();
  await page.waitForFunction((c) => document.querySelector("#concept-title")?.textContent.includes(c), {}, code);
});

test("a shared search URL restores the search; the keyboard reaches results", async () => {
  await page.goto(`${URL}/?q=seizure&system=HPO`, { waitUntil: "networkidle0" });
  await page.waitForSelector('.hit[data-system="HPO"]', { timeout: 20000 });
  assert.equal(await page.$eval("#q", (e) => e.value), "seizure");
  await page.keyboard.press("ArrowDown");
  const focused = await page.evaluate(() => document.activeElement.closest(".hit")?.dataset.code);
  assert.ok(focused, "ArrowDown focuses the first result");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#concept-title");
  assert.match(page.url(), new RegExp(`/concept/HPO/${encodeURIComponent(focused)}$`));
  await page.keyboard.press("/");
  await page.waitForSelector("#q");
  assert.equal(await page.evaluate(() => document.activeElement.id), "q");
});

test("paste a note and see ICD codes", async () => {
  await page.goto(`${URL}/?tab=note`, { waitUntil: "networkidle0" });
  await page.waitForSelector("#note-text");
  const note = "72 year old man admitted with acute myocardial infarction. History of type 2 diabetes mellitus without complications.";
  await page.$eval("#note-text", (e, v) => (e.value = v), note);
  await page.click("#note-run");
  await page.waitForSelector(".code-row", { timeout: 30000 });
  const codes = await page.$$eval(".code-row a", (as) => as.map((a) => a.dataset.code));
  assert.ok(codes.length > 0);
  assert.ok(codes.some((c) => c.startsWith("I21") || c.startsWith("E11")), JSON.stringify(codes));
  await shot("04-note-codes");
});

test("normalize and relatedness tools", async () => {
  await page.goto(`${URL}/?tab=normalize`, { waitUntil: "networkidle0" });
  await page.click("#norm-run");
  await page.waitForSelector("#norm-out table", { timeout: 20000 });
  await shot("05-normalize");
  await page.goto(`${URL}/?tab=relatedness`, { waitUntil: "networkidle0" });
  await page.click("#rel-run");
  await page.waitForFunction(() => /\d\.\d{4}/.test(document.querySelector("#rel-out")?.textContent || ""), { timeout: 20000 });
});

test("a trained model's card shows the trainer's pictures", async () => {
  const name = process.env.ONTOVEC_CARD_MODEL;
  assert.ok(name, "ONTOVEC_CARD_MODEL names the trained model (scripts/fhir.sh trains one)");
  await page.goto(`${URL}/models`, { waitUntil: "networkidle0" });
  await page.waitForSelector(`table.models a[href="/models/${name}"]`);
  await page.click(`table.models a[href="/models/${name}"]`);
  await page.waitForSelector("#model-title");
  assert.equal(new globalThis.URL(page.url()).pathname, `/models/${name}`);
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll(".card-pic img")];
    return imgs.length === 2 && imgs.every((i) => i.complete);
  }, { timeout: 20000 });
  const imgs = await page.$$eval(".card-pic img", (is) => is.map((i) => ({ src: new URL(i.src).pathname, w: i.naturalWidth, h: i.naturalHeight })));
  assert.deepEqual(imgs.map((i) => i.src), [`/v1/models/${name}/files/curves.svg`, `/v1/models/${name}/files/eval.svg`]);
  for (const i of imgs) assert.ok(i.w > 0 && i.h > 0, `${i.src} rendered: ${JSON.stringify(i)}`);
  await shot("06-model-card");
});

test("no script errors and nothing fetched from elsewhere", () => {
  assert.deepEqual(pageErrors, []);
});
