/**
 * The website of a live run in real headless Chromium (Debian's, driven by playwright-core): the agents, the
 * links (with the "disabled" hints), a chart of pushed metrics drawn from Prometheus, the events, the verdicts on
 * the scenario's success criteria (the same run checks the CLI's verdict table, `verdicts.json` and exit code); a
 * screenshot goes to `artifacts/website/` for people to look at. The live run also has `--open-telemetry`: its
 * timeline, the orchestrator's metrics in Prometheus and its spans at an OTLP/HTTP receiver are checked on the same
 * deployment (fixtures/TelemetryChecks.ts).
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

/** A kept-alive run of the MONITORING fixture `tag` (its website answers until Enter on its stdin), with `extra` arguments. */
const keptAlive = async (
  tag: string,
  run: { readonly namespace: string; readonly env: Record<string, string> },
  websitePort: number,
  extra: ReadonlyArray<string> = []
) =>
  start(
    [...(await monitoringRun(tag, run.namespace, websitePort)), ...extra, "--keep-alive"],
    { ...run.env, TEZT_CLOUD_SCENARIOS: scenarios },
    { stdin: "pipe" }
  )

describe("the website in a browser", () => {
  live(
    "shows the agents, the links, a chart of pushed metrics, the events, the timeline and the verdicts of a live run",
    async () => {
      const { env, namespace, stateDir } = fresh()
      const websitePort = await freePort()
      const artifacts = path.join(stateDir, "artifacts")
      // The same run checks the tool's own telemetry (README "Telemetry"): its spans go to this receiver.
      const otlp = await otlpReceiver()
      // Kept alive: the website still answers once the criteria are judged, until Enter.
      const cli = start(
        [
          ...(await monitoringRun("live", namespace, websitePort)),
          "--prometheus-scrape-interval",
          "1",
          "--artifacts-dir",
          artifacts,
          "--open-telemetry",
          "--keep-alive"
        ],
        { ...env, TEZT_CLOUD_SCENARIOS: scenarios, OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url },
        { stdin: "pipe" }
      )
      const browser = await launch()
      try {
        await cli.waitFor("ready for the browser")
        const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } })
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
        // The final verdicts, once the scenario has ended: one met, one not.
        await cli.waitFor("Please press <enter>")
        await page.waitForFunction("document.querySelector('#verdicts')?.dataset.final === 'true'", undefined, {
          timeout: 30_000,
          polling: 250
        })
        const rows = page.locator("#verdicts tr[data-criterion]")
        const judged = await Promise.all(
          Array.from({ length: await rows.count() }, async (_, n) => [
            await rows.nth(n).getAttribute("data-criterion"),
            await rows.nth(n).getAttribute("data-status")
          ])
        )
        assert.deepStrictEqual(judged, [["values pushed", "met"], ["node-b above 100", "failed"]])
        assert.include(
          await page.locator("#verdicts tr[data-criterion='node-b above 100']").textContent(),
          "max_over_time((tezt_browser_test{agent=\"node-b\"})[1m:])"
        )
        fs.mkdirSync(screenshots, { recursive: true })
        const file = path.join(screenshots, "live-run.png")
        await page.screenshot({ path: file, fullPage: true })
        assert.isAbove(fs.statSync(file).size, 10_000)
      } finally {
        await browser.close()
        cli.proc.stdin!.end("\n")
      }
      // A criterion not met: the run worked, its goal was missed (3, not 1).
      assert.strictEqual(await cli.exit, 3, cli.stderr())
      assert.include(cli.stderr(), "1 of 2 criteria not met: node-b above 100 (1")
      assert.include(cli.stdout(), "refused: criterion \"unparsable\": Prometheus refuses rate(: ")
      const table = cli.stdout().slice(cli.stdout().indexOf("verdicts:"))
      assert.match(table, /\nvalues pushed\s+min\(tezt_browser_test\)\s+\d+(\.\d+)?\s+>= 0\s+met\n/)
      assert.match(
        table,
        /\nnode-b above 100\s+max_over_time\(\(tezt_browser_test\{agent="node-b"\}\)\[1m:\]\)\s+1\d\s+> 100\s+failed\n/
      )
      const json = JSON.parse(fs.readFileSync(path.join(artifacts, "verdicts.json"), "utf8")) as {
        readonly met: boolean
        readonly verdicts: ReadonlyArray<{ readonly name: string; readonly status: string; readonly observed: string }>
      }
      assert.strictEqual(json.met, false)
      assert.deepStrictEqual(json.verdicts.map((v) => [v.name, v.status]), [
        ["values pushed", "met"],
        ["node-b above 100", "failed"]
      ])
      assert.isAtLeast(Number(json.verdicts[1]!.observed), 10)
      const events = fs.readFileSync(path.join(artifacts, "events.jsonl"), "utf8").split("\n").filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { readonly type: string; readonly verdict?: { readonly name: string } })
      assert.isTrue(
        events.some((e) => e.type === "verdict" && e.verdict?.name === "values pushed"),
        "judged during the run"
      )
      assert.strictEqual(events.filter((e) => e.type === "verdicts").length, 1)
      assert.deepStrictEqual(await noProcessLeft(namespace), [])
      await otlp.close()
      TelemetryChecks.exported(otlp.spans, ["node-a", "node-b"])
    }
  )

  live("shows where a failed scenario failed: its own file and line, in the trace of its end", async () => {
    const run = fresh()
    const { namespace } = run
    const websitePort = await freePort()
    // Kept alive: the website still answers once the scenario has failed, until Enter.
    const cli = await keptAlive("fails", run, websitePort)
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
