/**
 * The website of a live run in real headless Chromium (Debian's, driven by playwright-core): the agents, the
 * links (with the "disabled" hints), a chart of pushed metrics drawn from Prometheus, the events; a screenshot
 * goes to `artifacts/website/` for people to look at. The live run also has `--open-telemetry`: its timeline, the
 * orchestrator's metrics in Prometheus and its spans at an OTLP/HTTP receiver are checked on the same deployment
 * (fixtures/TelemetryChecks.ts).
 */
import { assert, describe } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { chromium } from "playwright-core"
import { freePort, freeRange, liveWith, otlpReceiver, which } from "../packages/monitoring/test/utils.ts"
import { fresh, noProcessLeft, root, start } from "./fixtures/Cli.ts"
import * as TelemetryChecks from "./fixtures/TelemetryChecks.ts"

const screenshots = path.join(root, "artifacts", "website")

const live = (name: string, body: () => Promise<void>) =>
  liveWith("prometheus", "chromium")(name, () => Effect.promise(body), 120_000)

/** Debian's headless Chromium. */
const launch = () =>
  chromium.launch({
    executablePath: which("chromium")!,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })

const scenarios = path.join(root, "test/fixtures/MonitoringScenarios.ts")

/** The arguments of a run of the MONITORING fixture `tag` with the website and Prometheus, on free ports. */
const monitoringRun = async (tag: string, namespace: string, websitePort: number) => [
  "MONITORING",
  tag,
  "--localhost",
  "--website",
  "--prometheus",
  "--no-process-monitoring",
  "--no-prometheus-export",
  "--tezt-cloud",
  namespace,
  "--website-port",
  String(websitePort),
  "--prometheus-port",
  String(await freePort()),
  "--vm-base-port",
  String(await freeRange(100))
]

describe("the website in a browser", () => {
  live("shows the agents, the links, a rendered chart of pushed metrics and the events of a live run", async () => {
    const { env, namespace } = fresh()
    const websitePort = await freePort()
    // The same run checks the tool's own telemetry (README "Telemetry"): its spans go to this receiver.
    const otlp = await otlpReceiver()
    const cli = start([
      ...(await monitoringRun("live", namespace, websitePort)),
      "--prometheus-scrape-interval",
      "1",
      "--open-telemetry"
    ], { ...env, TEZT_CLOUD_SCENARIOS: scenarios, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url })
    const browser = await launch()
    try {
      await cli.waitFor("ready for the browser")
      const page = await browser.newPage({ viewport: { width: 1400, height: 1800 } })
      await page.goto(`http://127.0.0.1:${websitePort}/`)
      const agents = await page.locator("article.agent h3").allTextContents()
      assert.deepStrictEqual(agents, ["node-a", "node-b"])
      assert.strictEqual(await page.locator("[data-link=Prometheus] a").count(), 1)
      assert.include(await page.locator("[data-link=Grafana]").textContent(), "Grafana disabled. Use --grafana")
      assert.strictEqual(
        await page.locator("[data-link='block explorer'] a").getAttribute("href"),
        "http://127.0.0.1:1/explorer"
      )
      assert.strictEqual(await page.locator("pre.command").count(), 2)
      // Bounded waits on what the page says, not on time: the chart has points of both agents, drawn on a canvas.
      const chart = page.locator("#metric-tezt_browser_test")
      await page.waitForFunction(
        "Number(document.querySelector('#metric-tezt_browser_test')?.dataset.points) >= 4",
        undefined,
        { timeout: 60_000, polling: 250 }
      )
      assert.strictEqual(await chart.getAttribute("data-series"), "2")
      assert.strictEqual(await chart.locator("canvas").count(), 1)
      const legend = (await chart.locator(".u-legend").textContent()) ?? ""
      for (const agent of ["node-a", "node-b"]) assert.include(legend, `agent=${agent}`)
      await page.waitForFunction(
        "document.querySelector('#event-list')?.textContent.includes('ready for the browser')",
        undefined,
        { timeout: 30_000, polling: 250 }
      )
      await TelemetryChecks.live(page, websitePort)
      fs.mkdirSync(screenshots, { recursive: true })
      const file = path.join(screenshots, "live-run.png")
      await page.screenshot({ path: file, fullPage: true })
      assert.isAbove(fs.statSync(file).size, 10_000)
    } finally {
      await browser.close()
      cli.proc.kill("SIGINT")
    }
    assert.strictEqual(await cli.exit, 130, cli.stderr())
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
    await otlp.close()
    TelemetryChecks.exported(otlp.spans, ["node-a", "node-b"])
  })

  live("shows where a failed scenario failed: its own file and line, in the trace of its end", async () => {
    const { env, namespace } = fresh()
    const websitePort = await freePort()
    // Kept alive: the website still answers once the scenario has failed, until Enter.
    const cli = start(
      [
        ...(await monitoringRun("fails", namespace, websitePort)),
        "--keep-alive"
      ],
      { ...env, TEZT_CLOUD_SCENARIOS: scenarios },
      { stdin: "pipe" }
    )
    const browser = await launch()
    try {
      await cli.waitFor("Please press <enter>")
      const page = await browser.newPage()
      await page.goto(`http://127.0.0.1:${websitePort}/`)
      await page.waitForFunction("document.querySelector('#event-list pre.trace') !== null", undefined, {
        timeout: 30_000,
        polling: 250
      })
      const trace = (await page.locator("#event-list pre.trace").textContent()) ?? ""
      assert.include(trace, "Cannot read properties of null (reading 'field')")
      assert.match(trace, /MonitoringScenarios\.ts:\d+:\d+/, "the scenario's own file and line")
    } finally {
      await browser.close()
      cli.proc.stdin!.end("\n")
    }
    assert.strictEqual(await cli.exit, 1, cli.stderr())
    assert.deepStrictEqual(await noProcessLeft(namespace), [])
  })
})
