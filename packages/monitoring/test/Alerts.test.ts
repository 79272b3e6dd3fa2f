/**
 * Alerts and the notifier: the generated rule file and Alertmanager configuration (pure), the checks of an alert,
 * then one run with the real Prometheus and Alertmanager whose firing alert reaches a local HTTP server standing in
 * for Slack (with the bot token as the Authorization header) and a webhook, and whose token is nowhere else.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Alert, Cloud, CloudConfig, Orchestrator, RunEvents, Scenario, TestCloud } from "@tezt-cloud/core"
import { Effect, Exit, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Alertmanager, Alerts, RunMonitor } from "../src/index.ts"
import { eventually, freeRange, liveWith, platform, serveJson } from "./utils.ts"

const settings: Alerts.Settings = {
  handlers: [{ _tag: "Slack" }, { _tag: "Webhook", url: "http://127.0.0.1:1/hook" }],
  slackChannel: "C-RUN",
  slackToken: "xoxb-not-in-files",
  slackApiUrl: "http://127.0.0.1:2/api/chat.postMessage"
}

describe("Alerts: generated files", () => {
  it("a rule per alert, grouped, at the smallest interval of its group, with defaults", () => {
    const rules = JSON.parse(Alerts.renderRules([
      { name: "A", expr: "up == 0", interval: "1m" },
      { name: "B", expr: "vector(1)", for: "5m", severity: "critical", summary: "s", interval: "30s" },
      { name: "C", expr: "vector(2)", group: "other", description: "d" }
    ]))
    assert.deepStrictEqual(rules, {
      groups: [
        {
          name: "tezt",
          interval: "30s",
          rules: [
            { alert: "A", expr: "up == 0", for: "0s", labels: { severity: "warning" }, annotations: {} },
            {
              alert: "B",
              expr: "vector(1)",
              for: "5m",
              labels: { severity: "critical" },
              annotations: { summary: "s" }
            }
          ]
        },
        {
          name: "other",
          rules: [{
            alert: "C",
            expr: "vector(2)",
            for: "0s",
            labels: { severity: "warning" },
            annotations: { description: "d" }
          }]
        }
      ]
    })
  })

  it("routes by alertname to the handlers, the alert's own receiver or none; the token only as a file", () => {
    const text = Alerts.renderAlertmanager(
      [
        { name: "ToHandlers", expr: "up", route: { groupWait: "1s", repeatInterval: "1h" } },
        { name: "ToNobody", expr: "up", receiver: { _tag: "None" } },
        { name: "ToHook", expr: "up", receiver: { _tag: "Webhook", url: "https://example.org/h" } },
        { name: "ToChannel", expr: "up", receiver: { _tag: "Slack", channel: "C-OWN" } },
        { name: "ToSlackHook", expr: "up", receiver: { _tag: "SlackWebhook", url: "https://hooks.example/T/B/s3cret" } }
      ],
      settings,
      (name) => `/private/${name}.secret`
    )
    assert.notInclude(text, settings.slackToken!)
    assert.notInclude(text, "s3cret", "a Slack webhook's URL is a secret too")
    const config = JSON.parse(text) as {
      route: { receiver: string; routes: Array<Record<string, unknown>> }
      receivers: Array<{ name: string; slack_configs?: Array<Record<string, unknown>>; webhook_configs?: unknown }>
    }
    assert.strictEqual(config.route.receiver, "none")
    assert.deepStrictEqual(config.route.routes, [
      { matchers: ["alertname=\"ToHandlers\""], receiver: "handlers", group_wait: "1s", repeat_interval: "1h" },
      { matchers: ["alertname=\"ToNobody\""], receiver: "none" },
      { matchers: ["alertname=\"ToHook\""], receiver: "alert:ToHook" },
      { matchers: ["alertname=\"ToChannel\""], receiver: "alert:ToChannel" },
      { matchers: ["alertname=\"ToSlackHook\""], receiver: "alert:ToSlackHook" }
    ])
    assert.deepStrictEqual(config.receivers.map((r) => r.name), [
      "none",
      "handlers",
      "alert:ToHook",
      "alert:ToChannel",
      "alert:ToSlackHook"
    ])
    assert.strictEqual(
      config.receivers[4]!.slack_configs![0]!.api_url_file,
      "/private/slack-webhook-ToSlackHook.secret"
    )
    const handlers = config.receivers[1]!
    assert.deepStrictEqual(handlers.webhook_configs, [{ url: "http://127.0.0.1:1/hook", send_resolved: true }])
    assert.deepInclude(handlers.slack_configs![0]!, {
      api_url: settings.slackApiUrl,
      channel: "C-RUN",
      http_config: { authorization: { type: "Bearer", credentials_file: `/private/${Alerts.slackTokenSecret}.secret` } }
    })
    assert.strictEqual(config.receivers[3]!.slack_configs![0]!.channel, "C-OWN")
  })

  it("an alert is checked before anything is written: name, durations, receivers", () => {
    const slack = { channel: undefined, hasToken: false }
    const cases: ReadonlyArray<readonly [Alert.Alert, string]> = [
      [{ name: "1st", expr: "up" }, "the name must be letters"],
      [{ name: "a-b", expr: "up" }, "the name must be letters"],
      [{ name: "A", expr: " " }, "the expression is empty"],
      [{ name: "A", expr: "up", for: "5 minutes" }, "for \"5 minutes\" is not a duration"],
      [{ name: "A", expr: "up", route: { groupWait: "soon" } }, "route.groupWait"],
      [{ name: "A", expr: "up", receiver: { _tag: "Webhook", url: "ftp://x" } }, "not an http(s) URL"],
      [{ name: "A", expr: "up", receiver: { _tag: "Slack" } }, "--slack-channel-id and the bot token"],
      [{ name: "A", expr: "up", receiver: { _tag: "Slack", channel: "C" } }, "$TEZTCLOUD_SLACK_BOT_TOKEN"]
    ]
    for (const [alert, says] of cases) {
      const error = Alert.check(alert, slack)
      assert.strictEqual(error?.reason._tag, "ConfigInvalid", alert.name)
      assert.include(error!.message, says)
      assert.notInclude(error!.message, "\n")
    }
    assert.isUndefined(Alert.check({ name: "ok:Name_2", expr: "up", for: "1h30m" }, slack))
  })

  it("--alert-handler is slack or an http(s) URL", () => {
    assert.deepStrictEqual(Alert.parseHandler("slack"), { _tag: "Slack" })
    assert.deepStrictEqual(Alert.parseHandler("https://h.example/x"), { _tag: "Webhook", url: "https://h.example/x" })
    assert.isUndefined(Alert.parseHandler("pagerduty"))
  })
})

/** What the stand-in for Slack and the webhook received. */
interface Received {
  readonly path: string
  readonly authorization: string | undefined
  readonly body: string
}

/** A local HTTP server answering every request as Slack's `chat.postMessage` does when it is happy. */
const receiver = Effect.gen(function*() {
  const received: Array<Received> = []
  const url = yield* serveJson((req, body) => {
    received.push({ path: req.url ?? "", authorization: req.headers.authorization, body })
    return [200, { ok: true }]
  })
  return { url, received }
})

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-test-alerts-"))
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }))

/** The pids and command lines of every process of this machine. */
const processes = () =>
  fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e)).flatMap((pid) => {
    try {
      return [{ pid: Number(pid), argv: fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0") }]
    } catch {
      return []
    }
  })

/** Every file under `dir`, recursively. */
const filesUnder = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]
  )

const live = liveWith("prometheus", "prometheus-alertmanager")

describe("Alerts with the real Prometheus and Alertmanager", () => {
  live(
    "a firing alert reaches Slack (token as the Authorization header) and the webhook; the token is nowhere else",
    () =>
      Effect.gen(function*() {
        const stub = yield* receiver
        const token = `xoxb-canary-${process.pid}-${Date.now()}`
        const hookPath = `/services/T0/B0/hook-canary-${process.pid}`
        // Prometheus on the first port, Alertmanager on the fourth (--prometheus-port + 3), below the agents' ports.
        const base = yield* Effect.promise(async () => {
          for (;;) {
            const first = await freeRange(4)
            if (first + 3 < 30000) return first
          }
        })
        const artifactsDir = path.join(tmpRoot, "artifacts")
        const config: CloudConfig.CloudConfig = {
          ...(yield* TestCloud.config({
            prometheus: true,
            // A front that serves nothing: it only gets the view, to read the website's links.
            website: true,
            website_port: base + 1,
            process_monitoring: false,
            prometheus_port: base,
            prometheus_scrape_interval: 1,
            prometheus_export: false,
            alert_handlers: ["slack", `${stub.url}/hook`],
            slack_channel_id: "C-ALERTS"
          })),
          slackBotToken: token
        }
        const events: Array<RunEvents.Stamped> = []
        let alertmanagerPid: number | undefined
        let privateDir: string | undefined
        let view: RunMonitor.View | undefined
        const scenario = Scenario.make({
          title: "alerts",
          tags: [],
          vms: [{}],
          run: Effect.gen(function*() {
            const cloud = yield* Cloud.Cloud
            const manager = processes().find((p) => p.argv.includes(`--web.listen-address=127.0.0.1:${base + 3}`))
            assert.isDefined(manager, "Alertmanager runs from the start with --alert-handler")
            alertmanagerPid = manager!.pid
            assert.include(manager!.argv, "--cluster.listen-address=", "no cluster port")
            assert.deepInclude(yield* view!.links, { name: "Alertmanager", url: `http://127.0.0.1:${base + 3}` })
            privateDir = manager!.argv.find((a) => a.startsWith("--storage.path="))!.slice("--storage.path=".length)
            const tokenFile = path.join(privateDir, `${Alerts.slackTokenSecret}.secret`)
            assert.strictEqual(fs.readFileSync(tokenFile, "utf8"), token)
            assert.strictEqual(fs.statSync(tokenFile).mode & 0o777, 0o600)

            yield* cloud.addAlert({
              name: "TeztAlwaysFiring",
              expr: "vector(1)",
              for: "0s",
              severity: "critical",
              summary: "always firing",
              description: "vector(1) is always there",
              route: { groupWait: "1s" }
            })
            // A Slack incoming webhook: its URL (the secret) goes to a file of Alertmanager's private dir.
            yield* cloud.addAlert({
              name: "TeztToSlackHook",
              expr: "vector(3)",
              receiver: { _tag: "SlackWebhook", url: `${stub.url}${hookPath}` },
              route: { groupWait: "1s" }
            })
            const slack = yield* eventually(
              Effect.sync(() => stub.received.find((r) => r.path === "/api/chat.postMessage")),
              "no Slack message"
            )
            assert.strictEqual(slack.authorization, `Bearer ${token}`)
            assert.include(slack.body, "C-ALERTS")
            assert.include(slack.body, "TeztAlwaysFiring")
            assert.include(slack.body, "always firing")
            const slackHook = yield* eventually(
              Effect.sync(() => stub.received.find((r) => r.path === hookPath)),
              "no Slack webhook call"
            )
            assert.include(slackHook.body, "TeztToSlackHook")
            const hook = yield* eventually(
              Effect.sync(() => stub.received.find((r) => r.path === "/hook")),
              "no webhook call"
            )
            assert.include(hook.body, "\"alertname\":\"TeztAlwaysFiring\"")
            assert.isUndefined(hook.authorization, "the webhook gets no token")

            // Refused by Prometheus: an error, and the rules stay as they were.
            const refused = yield* Effect.flip(cloud.addAlert({ name: "Broken", expr: "vector(" }))
            assert.strictEqual(refused.reason._tag, "ServiceFailed")
            assert.include(refused.message, "refused its new configuration")
            const invalid = yield* Effect.flip(cloud.addAlert({ name: "no good", expr: "up" }))
            assert.strictEqual(invalid.reason._tag, "ConfigInvalid")
            yield* cloud.addAlert({ name: "TeztSecond", expr: "vector(2)", receiver: { _tag: "None" } })

            yield* cloud.notify("scenario report: all good")
            const note = stub.received.find((r) => r.body.includes("scenario report: all good"))
            assert.isDefined(note, "posted before notify returns")
            assert.strictEqual(note!.authorization, `Bearer ${token}`)
            assert.strictEqual(note!.path, "/api/chat.postMessage")

            const everyArgument = processes().flatMap((p) => p.argv).join("\n")
            assert.notInclude(everyArgument, token, "no command line holds the token")
          })
        })
        const configs = yield* Orchestrator.agentConfigs(scenario, config)
        const exit = yield* Orchestrator.run(scenario, config, configs).pipe(
          Effect.provide(TestCloud.layerDeployment()),
          Effect.provide(
            RunMonitor.layer({
              config,
              artifactsDir,
              slackApiUrl: `${stub.url}/api/chat.postMessage`,
              front: (v) => Effect.sync(() => void (view = v))
            })
          ),
          Effect.provideService(CloudConfig.CurrentConfig, config),
          Effect.provide(Layer.mergeAll(RunEvents.RunEvents.layerWithLogger([(e) => events.push(e)]), platform)),
          Effect.exit
        )
        assert.isTrue(Exit.isSuccess(exit), String(Exit.isFailure(exit) ? exit.cause : ""))

        const messages = events.map((e) => JSON.stringify(e))
        assert.isTrue(messages.some((m) => m.includes("notification: scenario report: all good")))
        assert.notInclude(messages.join("\n"), token, "no event holds the token")
        assert.notInclude(messages.join("\n"), hookPath, "nor a Slack webhook's URL")
        const files = filesUnder(artifactsDir)
        assert.includeMembers(files.map((f) => path.relative(artifactsDir, f)), [
          "alertmanager/alertmanager.yml",
          "alertmanager/alertmanager.log",
          "prometheus/rules.yml"
        ])
        for (const file of files) {
          assert.notInclude(fs.readFileSync(file, "latin1"), token, file)
          assert.notInclude(fs.readFileSync(file, "latin1"), hookPath, file)
        }
        assert.include(fs.readFileSync(path.join(artifactsDir, "prometheus", "rules.yml"), "utf8"), "TeztSecond")
        assert.isFalse(fs.existsSync(privateDir!), "the private dir, token included, is removed")
        assert.throws(() => process.kill(alertmanagerPid!, 0), undefined, undefined, "Alertmanager is stopped")
      }).pipe(Effect.scoped, Effect.provide(platform))
  )
})

describe("Alertmanager left behind", () => {
  live("CLOUD clean up stops it and removes its private dir, the token's file with it", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => freeRange(1))
      const manager = yield* Alertmanager.start({
        host: "127.0.0.1",
        port,
        dir: path.join(tmpRoot, "left-behind"),
        namespace: "test-alerts",
        secrets: { [Alerts.slackTokenSecret]: "xoxb-left-behind" },
        config: (secretFile) => Alerts.renderAlertmanager([], { ...settings, handlers: [] }, secretFile)
      })
      const privateDir = processes().find((p) => p.pid === manager.pid)!.argv
        .find((a) => a.startsWith("--storage.path="))!.slice("--storage.path=".length)
      assert.isTrue(fs.existsSync(privateDir))
      // As if the run had been killed: the ledger still has the record, the daemon still runs.
      const lines = yield* Alertmanager.cleanUp()
      assert.deepStrictEqual(lines, [`stopped Alertmanager (pid ${manager.pid}) and removed its storage ${privateDir}`])
      assert.isFalse(fs.existsSync(privateDir))
      // Gone (at most a zombie until its parent, this process, reaps it: no command line left).
      assert.isFalse(processes().some((p) => p.pid === manager.pid && p.argv.join("") !== ""))
      assert.deepStrictEqual(yield* Alertmanager.cleanUp(), [], "its record is released")
    }).pipe(Effect.scoped, Effect.provide(platform)))
})
