/**
 * The run configuration: documented defaults, the defaults cascade (what each mode turns on), the namespace gate,
 * config files (merge and rejections), validation, `toJson` (secrets out, round trip) and `checkAvailable`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as CloudConfig from "../src/CloudConfig.ts"
import * as CloudError from "../src/CloudError.ts"

const env: CloudConfig.Environment = { TEZT_CLOUD: "ns" }

const resolve = (input: CloudConfig.Input, cliOnly: CloudConfig.CliOnly = {}, environment = env) =>
  CloudConfig.resolve(input, cliOnly, environment)

/** The option a `ConfigInvalid` names, after checking the error is one. */
const configInvalid = (error: CloudError.CloudError) => {
  assert.instanceOf(error, CloudError.CloudError)
  assert.strictEqual(error.reason._tag, "ConfigInvalid")
  assert.notInclude(error.message, "\n", "the message is one line")
  return error.reason._tag === "ConfigInvalid" ? error.reason : assert.fail("not ConfigInvalid")
}

const rejected = (input: CloudConfig.Input, cliOnly: CloudConfig.CliOnly = {}, environment = env) =>
  Effect.map(Effect.flip(resolve(input, cliOnly, environment)), configInvalid)

const fileRejected = (text: string) => Effect.map(Effect.flip(CloudConfig.decodeFile("run.json", text)), configInvalid)

const cloudDefaults: CloudConfig.CloudConfig = {
  namespace: "ns",
  backend: { _tag: "Gcp" },
  mode: "cloud",
  localhost: false,
  sshConfig: undefined,
  sshJump: undefined,
  sshPrivateKey: undefined,
  insecureHostKeys: false,
  sshProvision: false,
  sshMaxChannels: 8,
  proxy: false,
  monitoring: false,
  destroy: false,
  keepAlive: false,
  projectId: undefined,
  vmsLimit: undefined,
  vmBasePort: 30000,
  portsPerVm: 50,
  os: "cos",
  grafana: true,
  grafanaLegacySource: false,
  grafanaUrl: "http://127.0.0.1:3000",
  grafanaToken: undefined,
  alertHandlers: [],
  prometheus: true,
  prometheusExport: true,
  prometheusPort: 9090,
  prometheusExportPath: "/tmp/ns-prometheus-snapshot",
  prometheusSnapshots: [],
  prometheusScrapeInterval: 5,
  processMonitoring: true,
  website: true,
  websitePort: 8080,
  machineType: "n1-standard-2",
  diskType: undefined,
  diskSizeGb: undefined,
  dockerfileAlias: "ns",
  maxRunDuration: 7200,
  dnsDomains: [],
  noDns: false,
  openTelemetry: false,
  macosx: false,
  checkFileConsistency: true,
  dockerHostNetwork: true,
  pushDocker: true,
  autoApprove: true,
  faketime: undefined,
  binariesPath: "/tmp/tezt-runners",
  logRotation: 300,
  artifactsDir: undefined,
  dailyLogsArtifacts: false,
  teztaleArtifacts: false,
  ppxProfilingTracesArtifacts: false,
  tcDelay: undefined,
  tcJitter: undefined,
  authUsername: undefined,
  authPassword: undefined,
  slackChannelId: undefined,
  slackBotToken: undefined,
  scenarioSpecific: undefined
}

describe("CloudConfig: defaults", () => {
  it.effect("nothing given but the namespace: every field's default (cloud mode, cos)", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* resolve({}), cloudDefaults)
    }))

  it.effect("--localhost: the monitoring stack is off, the rest unchanged", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* resolve({ localhost: true }), {
        ...cloudDefaults,
        backend: { _tag: "Localhost", runtime: "auto" },
        mode: "localhost",
        localhost: true,
        grafana: false,
        prometheus: false,
        website: false,
        processMonitoring: false
      })
    }))

  // disk type and size are left to the GCP backend (terraform's own defaults), as in Tezt cloud.
  const appliedByBackend = new Set(["disk_type", "disk_size_gb"])
  const documented = CloudConfig.options.filter((spec) =>
    spec.key !== undefined && !appliedByBackend.has(spec.key) &&
    /^(true|false|none|\[\]|\d+|[\w./-]+)$/.test(spec.default)
  )

  it("the documented defaults that are plain values are checked below", () => {
    assert.isAtLeast(documented.length, 30)
  })

  it.effect.each(documented)("documented default of --$flag", (spec) =>
    Effect.gen(function*() {
      const json = CloudConfig.toJson(yield* resolve({}))
      const expected = spec.default === "true"
        ? true
        : spec.default === "false"
        ? false
        : spec.default === "none"
        ? undefined
        : spec.default === "[]"
        ? []
        : /^\d+$/.test(spec.default)
        ? Number(spec.default)
        : spec.default
      assert.deepStrictEqual(json[spec.key!], expected)
    }))
})

describe("CloudConfig: the option table", () => {
  it.effect.each([
    { name: "defaults", input: {}, cliOnly: {} },
    { name: "ssh host", input: { ssh_host: "h", prometheus_snapshots: ["/a"], tc_delay: "0,1" }, cliOnly: {} },
    {
      name: "remote orchestrator, secrets",
      input: { proxy: true, localhost: true, auth_username: "u", scenario_specific: ["X", 1] },
      cliOnly: { authPassword: "p", sshPrivateKey: "/k" }
    }
  ])(
    "a resolved configuration ($name) is what the CloudConfig schema says, field for field",
    ({ cliOnly, input }) =>
      Effect.gen(function*() {
        const config = yield* resolve(input, cliOnly)
        assert.sameMembers(Object.keys(config), Object.keys(CloudConfig.CloudConfig.fields))
        assert.deepStrictEqual(Schema.decodeUnknownSync(CloudConfig.CloudConfig)(config), config)
      })
  )

  it("an option has a field of the configuration, or feeds one, or is read by the CLI alone", () => {
    const fields = Object.keys(CloudConfig.CloudConfig.fields)
    for (const spec of CloudConfig.options) {
      if (spec.schema !== undefined) assert.include(fields, spec.field, spec.flag)
      else assert.isTrue(spec.key === undefined || spec.write !== undefined, `${spec.flag} is written back`)
    }
    assert.deepStrictEqual(
      CloudConfig.options.filter((spec) => spec.key === undefined).map((spec) => spec.field),
      ["configFile", "authPassword", "slackBotToken", "sshPrivateKey"]
    )
  })

  it("each backend's options come after the others, together, and ownedBy gives their fields", () => {
    const tags = CloudConfig.options.map((spec) => spec.backend ?? "")
    const firstOwned = tags.findIndex((tag) => tag !== "")
    assert.isTrue(tags.slice(firstOwned).every((tag) => tag !== ""), "no option any run reads among a backend's")
    const blocks = tags.slice(firstOwned).filter((tag, i, all) => i === 0 || all[i - 1] !== tag)
    assert.deepStrictEqual(blocks, Object.keys(CloudConfig.backendTags))
    const owned = (tag: CloudConfig.BackendTag) =>
      CloudConfig.options.filter((spec) => spec.backend === tag && spec.schema !== undefined).map((s) => s.field)
    for (const tag of ["ssh", "docker", "gcp"] as const) {
      const fields = CloudConfig.ownedBy(tag) as Record<string, unknown>
      assert.deepStrictEqual(Object.keys(fields), owned(tag))
      for (const [field, schema] of Object.entries(fields)) {
        assert.strictEqual(schema, (CloudConfig.CloudConfig.fields as Record<string, unknown>)[field])
      }
    }
    assert.deepStrictEqual(owned("gcp"), ["projectId", "machineType", "diskType", "diskSizeGb"])
    assert.deepStrictEqual(
      CloudConfig.options.filter((spec) => spec.backend === "ssh").map((spec) => spec.flag),
      [
        "ssh-host",
        "ssh-config",
        "ssh-jump",
        "ssh-private-key",
        "insecure-host-keys",
        "ssh-provision",
        "ssh-max-channels"
      ]
    )
  })
})

describe("CloudConfig: the defaults cascade", () => {
  const stack = (c: CloudConfig.CloudConfig) => ({
    grafana: c.grafana,
    prometheus: c.prometheus,
    website: c.website,
    processMonitoring: c.processMonitoring
  })
  const all = (on: boolean) => ({ grafana: on, prometheus: on, website: on, processMonitoring: on })

  it.effect.each([
    { name: "localhost", input: { localhost: true }, expected: all(false) },
    { name: "cloud, cos", input: {}, expected: all(true) },
    { name: "cloud, debian", input: { os: "debian" }, expected: all(false) },
    { name: "proxy (host), cos", input: { proxy: true }, expected: all(true) },
    { name: "proxy + localhost (remote orchestrator)", input: { proxy: true, localhost: true }, expected: all(true) },
    { name: "proxy, debian", input: { proxy: true, os: "debian" }, expected: all(false) },
    // Our --ssh-host keeps the orchestrator here (no proxy container on the host): like --localhost, all off.
    { name: "ssh-host, cos", input: { ssh_host: "h" }, expected: all(false) },
    {
      name: "localhost with alert handlers: prometheus on",
      input: { localhost: true, alert_handlers: ["slack"] },
      expected: { grafana: false, prometheus: true, website: true, processMonitoring: true }
    },
    {
      name: "debian with alert handlers: prometheus on",
      input: { os: "debian", alert_handlers: ["slack"] },
      expected: { grafana: false, prometheus: true, website: true, processMonitoring: true }
    },
    {
      name: "localhost --grafana: prometheus follows grafana",
      input: { localhost: true, grafana: true },
      expected: all(true)
    },
    {
      name: "cloud --no-grafana: everything follows",
      input: { grafana: false },
      expected: all(false)
    },
    {
      name: "cloud --no-prometheus wins over the cascade",
      input: { prometheus: false },
      expected: { grafana: true, prometheus: false, website: false, processMonitoring: false }
    },
    {
      name: "--no-prometheus wins over alert handlers",
      input: { localhost: true, alert_handlers: ["slack"], prometheus: false },
      expected: all(false)
    },
    {
      name: "cloud --no-website --no-process-monitoring",
      input: { website: false, process_monitoring: false },
      expected: { grafana: true, prometheus: true, website: false, processMonitoring: false }
    },
    {
      name: "localhost --website --process-monitoring alone",
      input: { localhost: true, website: true, process_monitoring: true },
      expected: { grafana: false, prometheus: false, website: true, processMonitoring: true }
    }
  ])("$name", ({ input, expected }) =>
    Effect.gen(function*() {
      assert.deepStrictEqual(stack(yield* resolve(input)), expected)
    }))

  it.effect.each([
    { input: {}, mode: "cloud", port: 8080 },
    { input: { localhost: true }, mode: "localhost", port: 8080 },
    { input: { proxy: true }, mode: "host", port: 8080 },
    { input: { proxy: true, localhost: true }, mode: "orchestrator", port: 80 },
    { input: { ssh_host: "h" }, mode: "ssh-host", port: 8080 }
  ])("mode $mode: website port $port", ({ input, mode, port }) =>
    Effect.gen(function*() {
      const config = yield* resolve(input)
      assert.strictEqual(config.mode, mode)
      assert.strictEqual(config.websitePort, port)
      assert.strictEqual((yield* resolve({ ...input, website_port: 4000 })).websitePort, 4000)
    }))

  it.effect.each([
    { name: "cloud, cos", input: {}, expected: 7200 },
    { name: "custom", input: { max_run_duration: 600 }, expected: 600 },
    { name: "proxy", input: { proxy: true, max_run_duration: 600 }, expected: undefined },
    { name: "os debian", input: { os: "debian" }, expected: undefined },
    { name: "--no-max-run-duration", input: { no_max_run_duration: true, max_run_duration: 600 }, expected: undefined },
    { name: "proxy but no_max_run_duration false", input: { proxy: true, no_max_run_duration: false }, expected: 7200 },
    { name: "localhost", input: { localhost: true }, expected: 7200 }
  ])("max run duration: $name", ({ input, expected }) =>
    Effect.gen(function*() {
      assert.strictEqual((yield* resolve(input)).maxRunDuration, expected)
    }))

  it.effect("--macosx turns the md5 check and the host network off, unless given", () =>
    Effect.gen(function*() {
      const mac = yield* resolve({ macosx: true })
      assert.isFalse(mac.checkFileConsistency)
      assert.isFalse(mac.dockerHostNetwork)
      const forced = yield* resolve({ macosx: true, check_file_consistency: true, docker_host_network: true })
      assert.isTrue(forced.checkFileConsistency)
      assert.isTrue(forced.dockerHostNetwork)
      const linux = yield* resolve({ check_file_consistency: false, docker_host_network: false })
      assert.isFalse(linux.checkFileConsistency)
      assert.isFalse(linux.dockerHostNetwork)
    }))

  it.effect("names derive from the namespace unless given", () =>
    Effect.gen(function*() {
      const config = yield* resolve({ tezt_cloud: "alpha" })
      assert.strictEqual(config.dockerfileAlias, "alpha")
      assert.strictEqual(config.prometheusExportPath, "/tmp/alpha-prometheus-snapshot")
      const given = yield* resolve({ tezt_cloud: "alpha", dockerfile_alias: "debian", prometheus_export_path: "/x" })
      assert.strictEqual(given.dockerfileAlias, "debian")
      assert.strictEqual(given.prometheusExportPath, "/x")
    }))

  it.effect("DNS domains get a trailing dot, once", () =>
    Effect.gen(function*() {
      const config = yield* resolve({ dns_domains: ["a.example.com", "b.example.com."] })
      assert.deepStrictEqual(config.dnsDomains, ["a.example.com.", "b.example.com."])
    }))
})

describe("CloudConfig: the namespace gate", () => {
  it.effect("no --tezt-cloud and no $TEZT_CLOUD: the run is refused", () =>
    Effect.gen(function*() {
      for (const environment of [{}, { TEZT_CLOUD: "" }]) {
        const reason = yield* rejected({}, {}, environment)
        assert.strictEqual(reason.option, "--tezt-cloud")
        assert.include(reason.message, "the tezt-cloud value should be set")
        assert.include(reason.message, "TEZT_CLOUD")
      }
    }))

  it.effect("$TEZT_CLOUD is the namespace; --tezt-cloud wins over it", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* resolve({}, {}, { TEZT_CLOUD: "from-env" })).namespace, "from-env")
      assert.strictEqual(
        (yield* resolve({ tezt_cloud: "from-cli" }, {}, { TEZT_CLOUD: "from-env" })).namespace,
        "from-cli"
      )
      assert.strictEqual((yield* resolve({ tezt_cloud: "only-cli" }, {}, {})).namespace, "only-cli")
    }))

  it.effect.each(["bad ns", "-lead", "a/b", "", "ü", "x".repeat(64)])(
    "invalid namespace %j is refused",
    (ns) =>
      Effect.gen(function*() {
        const reason = yield* rejected({ tezt_cloud: ns })
        assert.strictEqual(reason.option, "--tezt-cloud")
      })
  )

  it.effect.each(["a", "My_run.2-b", "x".repeat(63)])("valid namespace %j", (ns) =>
    Effect.gen(function*() {
      assert.strictEqual((yield* resolve({ tezt_cloud: ns })).namespace, ns)
    }))
})

describe("CloudConfig: config files", () => {
  it.effect("merge: the CLI overrides scalars, lists concatenate (file first)", () =>
    Effect.gen(function*() {
      const file = yield* CloudConfig.decodeFile(
        "run.json",
        JSON.stringify({
          vm_base_port: 31000,
          localhost: true,
          grafana: true,
          machine_type: "e2-small",
          alert_handlers: ["file-a"],
          dns_domains: ["file.org"]
        })
      )
      const merged = CloudConfig.merge(file, {
        vm_base_port: 32000,
        grafana: false,
        alert_handlers: ["cli-b", "cli-c"],
        dns_domains: undefined,
        os: "debian"
      })
      assert.deepStrictEqual(merged, {
        vm_base_port: 32000,
        localhost: true,
        grafana: false,
        machine_type: "e2-small",
        alert_handlers: ["file-a", "cli-b", "cli-c"],
        dns_domains: ["file.org"],
        os: "debian"
      })
      const config = yield* resolve(merged)
      assert.strictEqual(config.vmBasePort, 32000)
      assert.isFalse(config.grafana)
      assert.strictEqual(config.machineType, "e2-small")
      assert.deepStrictEqual(config.alertHandlers, ["file-a", "cli-b", "cli-c"])
      assert.deepStrictEqual(config.dnsDomains, ["file.org."])
      assert.strictEqual(config.mode, "localhost")
    }))

  it.effect("merge: a file's list with none on the CLI, and a CLI list with none in the file", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(CloudConfig.merge({ alert_handlers: ["a"] }, {}), { alert_handlers: ["a"] })
      assert.deepStrictEqual(CloudConfig.merge({}, { alert_handlers: ["b"] }), { alert_handlers: ["b"] })
    }))

  it.effect("a file may hold every config key and scenario_specific", () =>
    Effect.gen(function*() {
      const input = yield* CloudConfig.decodeFile(
        "run.json",
        JSON.stringify({ tezt_cloud: "f", os: "debian", scenario_specific: ["DAL", { bakers: 3 }] })
      )
      const config = yield* resolve(input)
      assert.strictEqual(config.namespace, "f")
      assert.strictEqual(config.os, "debian")
      assert.deepStrictEqual(config.scenarioSpecific, ["DAL", { bakers: 3 }])
    }))

  it.effect.each([
    "{\n  \"localhost\": yes\n}",
    "{\n\"localhost\": true,\n}",
    "",
    "{"
  ])("invalid JSON %j: one line naming the file", (text) =>
    Effect.gen(function*() {
      const reason = yield* fileRejected(text)
      assert.strictEqual(reason.option, "--config-file")
      assert.include(reason.message, "run.json is not valid JSON")
    }))

  it.effect.each([
    "s3cret-canary-value",
    "{\"grafana_url\": s3cret-canary-value}",
    "{\"slack_channel_id\": \"s3cret-canary-value",
    "{\"slack_channel_id\": \"s3cret-canary-value\" oops}",
    "{\"a\": 1,\n\"b\": \"s3cret-canary-value\"\nx}"
  ])("invalid JSON %j: the error never quotes the file (it may hold a secret)", (text) =>
    Effect.gen(function*() {
      const reason = yield* fileRejected(text)
      assert.include(reason.message, "run.json is not valid JSON")
      for (let i = 0; i + 4 <= "s3cret-canary-value".length; i++) {
        assert.notInclude(reason.message, "s3cret-canary-value".slice(i, i + 4), reason.message)
      }
    }))

  it.effect.each(["[]", "42", "null", "\"localhost\"", "[{\"localhost\": true}]"])(
    "non-object %s",
    (text) =>
      Effect.gen(function*() {
        const reason = yield* fileRejected(text)
        assert.strictEqual(reason.option, "--config-file")
        assert.include(reason.message, "must hold a JSON object")
      })
  )

  it.effect("an unknown key is named, with the close key suggested", () =>
    Effect.gen(function*() {
      const reason = yield* fileRejected(JSON.stringify({ "vm-base-port": 1 }))
      assert.include(reason.option, "\"vm-base-port\"")
      assert.include(reason.option, "run.json")
      assert.include(reason.message, "unknown option")
      assert.include(reason.message, "did you mean \"vm_base_port\"")
      const noGuess = yield* fileRejected(JSON.stringify({ localhost: true, bogus: 1 }))
      assert.include(noGuess.option, "\"bogus\"")
      assert.notInclude(noGuess.message, "did you mean")
      const camel = yield* fileRejected(JSON.stringify({ vmBasePort: 1 }))
      assert.include(camel.message, "did you mean \"vm_base_port\"")
      // Typos: a swapped, a missing, a changed letter.
      for (const typo of ["vm_base_prot", "vm_base_por", "vms_limot", "websiteport"]) {
        const typed = yield* fileRejected(JSON.stringify({ [typo]: 1 }))
        assert.match(typed.message, /did you mean "(vm_base_port|vms_limit|website_port)"/, typo)
      }
    }))

  it.effect.each(["constructor", "toString", "__proto__", "hasOwnProperty"])(
    "the key %j is unknown, not an Object member",
    (key) =>
      Effect.gen(function*() {
        const reason = yield* fileRejected(`{"${key}": {"localhost": true}}`)
        assert.include(reason.option, `"${key}"`)
        assert.include(reason.message, "unknown option")
      })
  )

  it.effect.each([
    { key: "vm_base_port", value: "abc" },
    { key: "vm_base_port", value: 1.5 },
    { key: "localhost", value: "yes" },
    { key: "alert_handlers", value: "slack" },
    { key: "alert_handlers", value: [1] },
    { key: "os", value: "ubuntu" },
    { key: "agent_runtime", value: "vm" },
    { key: "tezt_cloud", value: 3 },
    { key: "scenario_specific", value: "DAL" }
  ])("wrong type: $key = $value", ({ key, value }) =>
    Effect.gen(function*() {
      const reason = yield* fileRejected(JSON.stringify({ localhost: true, [key]: value }))
      assert.include(reason.option, `"${key}`)
      assert.include(reason.option, "run.json")
      assert.match(reason.message, /^Expected .+, got /)
    }))

  it.effect.each([
    { key: "auth_password", advice: ["never read from a config file", "--auth-password", "$TEZT_CLOUD_AUTH_PASSWORD"] },
    {
      key: "slack_bot_token",
      advice: ["never read from a config file", "--slack-bot-token", "$TEZTCLOUD_SLACK_BOT_TOKEN"]
    },
    { key: "ssh_private_key", advice: ["--ssh-private-key"] },
    { key: "config_file", advice: ["cannot include another"] }
  ])("the key $key is refused with its advice", ({ key, advice }) =>
    Effect.gen(function*() {
      const reason = yield* fileRejected(JSON.stringify({ [key]: "s3cret" }))
      assert.include(reason.option, `"${key}"`)
      for (const text of advice) assert.include(reason.message, text)
      assert.notInclude(reason.message, "s3cret")
    }))

  it.effect("decodeInput names the first bad key", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(CloudConfig.decodeInput({ vm_base_port: "x" }, "option"))
      const reason = configInvalid(error)
      assert.strictEqual(reason.option, "option \"vm_base_port\"")
      assert.strictEqual(reason.message, "Expected number, got \"x\"")
    }))
})

describe("CloudConfig: validation", () => {
  it.effect("--ssh-host with --localhost or --proxy is refused", () =>
    Effect.gen(function*() {
      const local = yield* rejected({ ssh_host: "root@h", localhost: true })
      assert.strictEqual(local.option, "--ssh-host")
      assert.include(local.message, "--localhost")
      const proxy = yield* rejected({ ssh_host: "root@h", proxy: true })
      assert.strictEqual(proxy.option, "--ssh-host")
      assert.include(proxy.message, "--proxy")
    }))

  it.effect.each(["root@", "@h", "a b", "h:0", "h:70000", "u@h:port", "u@v@h", ""])(
    "bad ssh host %j",
    (text) =>
      Effect.gen(function*() {
        const reason = yield* rejected({ ssh_host: text })
        assert.strictEqual(reason.option, "--ssh-host")
        assert.include(reason.message, "[user@]host[:port]")
      })
  )

  it.effect("ssh host: user defaults to $USER (else root), port to 22", () =>
    Effect.gen(function*() {
      const target = (input: CloudConfig.Input, environment = env) =>
        Effect.map(resolve(input, {}, environment), (c) => c.backend)
      assert.deepStrictEqual(yield* target({ ssh_host: "h" }, { TEZT_CLOUD: "ns", USER: "bob" }), {
        _tag: "SshHost",
        target: { user: "bob", host: "h", port: 22, defaults: ["user", "port"] }
      })
      assert.deepStrictEqual(yield* target({ ssh_host: "10.0.0.1" }), {
        _tag: "SshHost",
        target: { user: "root", host: "10.0.0.1", port: 22, defaults: ["user", "port"] }
      })
      assert.deepStrictEqual(yield* target({ ssh_host: "al@h.org:2200" }), {
        _tag: "SshHost",
        target: { user: "al", host: "h.org", port: 2200 }
      })
    }))

  it.effect.each<{ readonly input: CloudConfig.Input; readonly backend: CloudConfig.BackendChoice }>([
    { input: {}, backend: { _tag: "Gcp" } },
    { input: { localhost: true }, backend: { _tag: "Localhost", runtime: "auto" } },
    { input: { localhost: true, agent_runtime: "docker" }, backend: { _tag: "Localhost", runtime: "docker" } },
    { input: { proxy: true }, backend: { _tag: "Proxy", inner: { _tag: "Gcp" } } },
    {
      input: { proxy: true, localhost: true, agent_runtime: "process" },
      backend: { _tag: "Proxy", inner: { _tag: "Localhost", runtime: "process" } }
    }
  ])("backend choice of $input", ({ backend, input }) =>
    Effect.gen(function*() {
      assert.deepStrictEqual((yield* resolve(input)).backend, backend)
    }))

  it.effect.each([
    { key: "vm_base_port", value: 70000, flag: "--vm-base-port" },
    { key: "vm_base_port", value: 0, flag: "--vm-base-port" },
    { key: "prometheus_port", value: 65536, flag: "--prometheus-port" },
    { key: "website_port", value: 0, flag: "--website-port" },
    { key: "ports_per_vm", value: 1, flag: "--ports-per-vm" },
    { key: "vms_limit", value: -1, flag: "--vms-limit" },
    { key: "log_rotation", value: -1, flag: "--log-rotation" },
    { key: "prometheus_scrape_interval", value: 0, flag: "--prometheus-scrape-interval" },
    { key: "max_run_duration", value: 0, flag: "--max-run-duration" },
    { key: "disk_size_gb", value: 0, flag: "--disk-size-gb" }
  ])("$key = $value is out of range", ({ key, value, flag }) =>
    Effect.gen(function*() {
      const reason = yield* rejected({ [key]: value })
      assert.strictEqual(reason.option, flag)
      assert.include(reason.message, String(value))
    }))

  it.effect("the port range of an agent must fit below 65536", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* resolve({ vm_base_port: 65000, ports_per_vm: 536 })).portsPerVm, 536)
      const reason = yield* rejected({ vm_base_port: 65000, ports_per_vm: 537 })
      assert.strictEqual(reason.option, "--ports-per-vm")
    }))

  it.effect("edge values are accepted", () =>
    Effect.gen(function*() {
      const config = yield* resolve({ vms_limit: 0, log_rotation: 0, vm_base_port: 65534, ports_per_vm: 2 })
      assert.strictEqual(config.vmsLimit, 0)
      assert.strictEqual(config.logRotation, 0)
      assert.strictEqual(config.vmBasePort, 65534)
      assert.strictEqual(config.portsPerVm, 2)
    }))

  it.effect.each([
    { text: "0.1,0.5", expected: { min: 0.1, max: 0.5 } },
    { text: "0,0", expected: { min: 0, max: 0 } },
    { text: " 1 , 2 ", expected: { min: 1, max: 2 } }
  ])("tc delay/jitter $text", ({ text, expected }) =>
    Effect.gen(function*() {
      const config = yield* resolve({ tc_delay: text, tc_jitter: text })
      assert.deepStrictEqual(config.tcDelay, expected)
      assert.deepStrictEqual(config.tcJitter, expected)
    }))

  it.effect.each(["1", "a,b", "2,1", "-1,2", "1,2,3", ",", "1,", ",5", "Infinity,Infinity"])(
    "bad MIN,MAX %j",
    (text) =>
      Effect.gen(function*() {
        const delay = yield* rejected({ tc_delay: text })
        assert.strictEqual(delay.option, "--tc-delay")
        assert.include(delay.message, "MIN,MAX")
        const jitter = yield* rejected({ tc_jitter: text })
        assert.strictEqual(jitter.option, "--tc-jitter")
      })
  )

  it.effect("auth needs both a user name and a password", () =>
    Effect.gen(function*() {
      const noPassword = yield* rejected({ auth_username: "u" })
      assert.strictEqual(noPassword.option, "--auth-password")
      const noUser = yield* rejected({}, { authPassword: "p" })
      assert.strictEqual(noUser.option, "--auth-username")
      const envOnlyUser = yield* rejected({}, {}, { TEZT_CLOUD: "ns", TEZT_CLOUD_AUTH_USERNAME: "u" })
      assert.strictEqual(envOnlyUser.option, "--auth-password")

      const cli = yield* resolve({ auth_username: "u" }, { authPassword: "p" })
      assert.deepStrictEqual([cli.authUsername, cli.authPassword], ["u", "p"])
      const fromEnv = yield* resolve({}, {}, {
        TEZT_CLOUD: "ns",
        TEZT_CLOUD_AUTH_USERNAME: "eu",
        TEZT_CLOUD_AUTH_PASSWORD: "ep"
      })
      assert.deepStrictEqual([fromEnv.authUsername, fromEnv.authPassword], ["eu", "ep"])
      const cliWins = yield* resolve({ auth_username: "u" }, { authPassword: "p" }, {
        TEZT_CLOUD: "ns",
        TEZT_CLOUD_AUTH_USERNAME: "eu",
        TEZT_CLOUD_AUTH_PASSWORD: "ep"
      })
      assert.deepStrictEqual([cliWins.authUsername, cliWins.authPassword], ["u", "p"])
    }))

  it.effect("auth is refused with --macosx", () =>
    Effect.gen(function*() {
      const reason = yield* rejected({ auth_username: "u", macosx: true }, { authPassword: "p" })
      assert.strictEqual(reason.option, "--auth-username")
      assert.include(reason.message, "--macosx")
    }))

  it.effect("the slack token comes from the CLI, else $TEZTCLOUD_SLACK_BOT_TOKEN", () =>
    Effect.gen(function*() {
      const environment = { TEZT_CLOUD: "ns", TEZTCLOUD_SLACK_BOT_TOKEN: "env-token" }
      assert.strictEqual((yield* resolve({}, {}, environment)).slackBotToken, "env-token")
      assert.strictEqual((yield* resolve({}, { slackBotToken: "cli" }, environment)).slackBotToken, "cli")
    }))

  it.effect("prometheus snapshots: ports default to prometheus_port + i", () =>
    Effect.gen(function*() {
      const snaps = ["/s/a", "/s/b:7000", "/s/c"]
      assert.deepStrictEqual((yield* resolve({ prometheus_snapshots: snaps })).prometheusSnapshots, [
        { path: "/s/a", port: 9090 },
        { path: "/s/b", port: 7000 },
        { path: "/s/c", port: 9092 }
      ])
      const moved = yield* resolve({ prometheus_snapshots: ["/s/a", "/s/b"], prometheus_port: 9500 })
      assert.deepStrictEqual(moved.prometheusSnapshots.map((s) => s.port), [9500, 9501])
      const reason = yield* rejected({ prometheus_snapshots: ["/s/a:70000"] })
      assert.strictEqual(reason.option, "--prometheus-snapshots")
    }))
})

describe("CloudConfig: --grafana-url", () => {
  it.effect("an http(s) URL, trailing slashes dropped", () =>
    Effect.gen(function*() {
      assert.strictEqual(
        (yield* resolve({ grafana_url: "http://127.0.0.1:3001/" })).grafanaUrl,
        "http://127.0.0.1:3001"
      )
      assert.strictEqual((yield* resolve({ grafana_url: "https://g.org/grafana" })).grafanaUrl, "https://g.org/grafana")
    }))

  it.effect.each(["127.0.0.1:3000", "ftp://g.org", "http://", "http://a b"])(
    "%s is refused by name",
    (url) =>
      Effect.gen(function*() {
        const reason = yield* rejected({ grafana_url: url })
        assert.strictEqual(reason.option, "--grafana-url")
        assert.include(reason.message, "is not an http(s) URL")
      })
  )
})

describe("CloudConfig: toJson", () => {
  const secretsEnv: CloudConfig.Environment = {
    TEZT_CLOUD: "ns",
    TEZT_CLOUD_AUTH_PASSWORD: "env-password-123",
    TEZTCLOUD_SLACK_BOT_TOKEN: "xoxb-env-token-456",
    TEZT_CLOUD_GRAFANA_TOKEN: "glsa-env-token-321"
  }

  it.effect("secrets never appear, whether from the CLI or the environment", () =>
    Effect.gen(function*() {
      for (
        const [cliOnly, environment] of [
          [{ authPassword: "cli-password-789", slackBotToken: "xoxb-cli-token-000" }, env],
          [{}, secretsEnv]
        ] as const
      ) {
        const config = yield* resolve({ auth_username: "u", slack_channel_id: "C1" }, cliOnly, environment)
        assert.isDefined(config.authPassword)
        assert.isDefined(config.slackBotToken)
        if (environment === secretsEnv) assert.strictEqual(config.grafanaToken, "glsa-env-token-321")
        const json = CloudConfig.toJson(config)
        assert.notProperty(json, "auth_password")
        assert.notProperty(json, "slack_bot_token")
        const text = JSON.stringify(json)
        assert.notInclude(text, config.authPassword!)
        assert.notInclude(text, config.slackBotToken!)
        assert.notInclude(text, "glsa-env-token-321")
        assert.strictEqual(json["auth_username"], "u")
        assert.strictEqual(json["slack_channel_id"], "C1")
      }
    }))

  const roundTrips: ReadonlyArray<{ name: string; input: CloudConfig.Input; cliOnly?: CloudConfig.CliOnly }> = [
    { name: "defaults (cloud)", input: {} },
    { name: "localhost", input: { localhost: true, agent_runtime: "process" } },
    { name: "debian (no TTL)", input: { os: "debian" } },
    { name: "remote orchestrator", input: { proxy: true, localhost: true } },
    { name: "ssh host", input: { ssh_host: "h" } },
    {
      name: "everything set",
      cliOnly: { authPassword: "pw", slackBotToken: "tok", sshPrivateKey: "/k" },
      input: {
        tezt_cloud: "full",
        localhost: true,
        agent_runtime: "docker",
        monitoring: true,
        destroy: true,
        keep_alive: true,
        project_id: "proj",
        vms_limit: 3,
        vm_base_port: 40000,
        ports_per_vm: 20,
        os: "debian",
        grafana: true,
        grafana_legacy_source: true,
        grafana_url: "https://grafana.example.org/sub",
        alert_handlers: ["slack", "pager"],
        prometheus: false,
        prometheus_export: false,
        prometheus_port: 9100,
        prometheus_export_path: "/snap",
        prometheus_snapshots: ["/a", "/b:9300"],
        prometheus_scrape_interval: 15,
        process_monitoring: true,
        website: true,
        website_port: 8888,
        machine_type: "e2-small",
        disk_type: "pd-standard",
        disk_size_gb: 50,
        dockerfile_alias: "alias",
        max_run_duration: 900,
        no_max_run_duration: false,
        dns_domains: ["x.org", "y.org."],
        no_dns: true,
        open_telemetry: true,
        macosx: false,
        check_file_consistency: false,
        docker_host_network: false,
        push_docker: false,
        auto_approve: false,
        faketime: "-10d",
        binaries_path: "/bin",
        log_rotation: 0,
        artifacts_dir: "/art",
        daily_logs_artifacts: true,
        teztale_artifacts: true,
        retrieve_ppx_profiling_traces: true,
        tc_delay: "0.1,0.5",
        tc_jitter: "0,1",
        auth_username: "user",
        slack_channel_id: "C1",
        scenario_specific: ["DAL", { n: 1 }]
      }
    }
  ]

  it.effect.each(roundTrips)(
    "round trip through a config file: $name",
    ({ input, cliOnly = {} }) =>
      Effect.gen(function*() {
        const config = yield* resolve(input, cliOnly)
        const text = JSON.stringify(CloudConfig.toJson(config), null, 2)
        const back = yield* CloudConfig.decodeFile("configuration.json", text)
        // Secrets are not in the file: the password comes back through the CLI, as a rerun would give it.
        const again = yield* CloudConfig.resolve(back, { authPassword: config.authPassword }, {})
        assert.deepStrictEqual(again, { ...config, slackBotToken: undefined, sshPrivateKey: undefined })
      })
  )
})

describe("CloudConfig: checkAvailable", () => {
  it.effect("--dns-domain points at an ssh host or a GCP proxy: accepted there, refused elsewhere saying why", () =>
    Effect.gen(function*() {
      yield* CloudConfig.checkAvailable(
        yield* resolve({ ssh_host: "root@h", dns_domains: ["a.org"], prometheus: false, grafana: false })
      )
      yield* CloudConfig.checkAvailable(yield* resolve({ proxy: true, dns_domains: ["a.org"] }))
      const local = yield* Effect.flip(
        CloudConfig.checkAvailable(yield* resolve({ localhost: true, proxy: true, dns_domains: ["a.org"] }))
      )
      assert.deepInclude(local.reason, { _tag: "ConfigInvalid", option: "--dns-domain" })
      const error = yield* Effect.flip(
        CloudConfig.checkAvailable(yield* resolve({ localhost: true, dns_domains: ["a.org"] }))
      )
      assert.deepInclude(error.reason, { _tag: "ConfigInvalid", option: "--dns-domain" })
      assert.include(error.message, "--ssh-host")
    }))

  it.effect("--faketime passes on every backend (the agents' own libfaketime applies it)", () =>
    Effect.gen(function*() {
      for (
        const input of [
          { ssh_host: "root@h", prometheus: false, grafana: false },
          { localhost: true },
          { localhost: true, agent_runtime: "docker" as const },
          { grafana: false }
        ]
      ) {
        yield* CloudConfig.checkAvailable(yield* resolve({ ...input, faketime: "-1d" }))
      }
    }))

  it.effect.each(["-10d", "+2h", "-1.5h", "+30", "@2030-01-01 00:00:00", "2030-01-01 00:00:00", "-1d x2"])(
    "--faketime %s is a libfaketime spec",
    (spec) =>
      Effect.map(resolve({ localhost: true, faketime: spec }), (config) => assert.strictEqual(config.faketime, spec))
  )

  it.effect.each(["yesterday", "-10 days", "@2030-01-01", "", "-1d; rm -rf /"])(
    "--faketime %j is refused, naming the option and the forms",
    (spec) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(resolve({ localhost: true, faketime: spec }))
        assert.strictEqual(error.reason._tag, "ConfigInvalid")
        assert.include(error.message, "--faketime")
        assert.include(error.message, "-10d")
        assert.notInclude(error.message, "\n")
      })
  )

  it.effect("the default (GCP) mode passes", () =>
    Effect.gen(function*() {
      yield* CloudConfig.checkAvailable(yield* resolve({}))
      yield* CloudConfig.checkAvailable(yield* resolve({ grafana: false, destroy: true, project_id: "p" }))
    }))

  it.effect("--tc-delay and --tc-jitter pass on process sandboxes and host-network Docker, not on a Docker network", () =>
    Effect.gen(function*() {
      const tc = { tc_delay: "0.2,0.2", tc_jitter: "0,0.1" }
      yield* CloudConfig.checkAvailable(yield* resolve({ localhost: true, ...tc }))
      yield* CloudConfig.checkAvailable(yield* resolve({ localhost: true, agent_runtime: "process", ...tc }))
      yield* CloudConfig.checkAvailable(yield* resolve({ localhost: true, agent_runtime: "docker", ...tc }))
      const error = yield* Effect.flip(CloudConfig.checkAvailable(
        yield* resolve({ localhost: true, agent_runtime: "docker", docker_host_network: false, ...tc })
      ))
      assert.include(error.message, "--tc-delay")
      assert.include(error.message, "--docker-host-network")
      const ssh = yield* Effect.flip(
        CloudConfig.checkAvailable(yield* resolve({ ssh_host: "root@h", tc_delay: "0,1" }))
      )
      assert.include(ssh.message, "--tc-delay")
      assert.include(ssh.message, "share its network interface")
      const gcp = yield* Effect.flip(CloudConfig.checkAvailable(yield* resolve({ tc_jitter: "0,1" })))
      assert.include(gcp.message, "--tc-jitter")
      assert.include(gcp.message, "GCP VMs")
    }))

  it.effect("plain --localhost passes, with any option this build has", () =>
    Effect.gen(function*() {
      yield* CloudConfig.checkAvailable(yield* resolve({ localhost: true }))
      yield* CloudConfig.checkAvailable(
        yield* resolve({
          localhost: true,
          agent_runtime: "process",
          destroy: true,
          keep_alive: true,
          vms_limit: 2,
          vm_base_port: 40000,
          macosx: true,
          no_dns: true,
          artifacts_dir: "/tmp/a",
          website: true,
          prometheus: true,
          grafana: true,
          process_monitoring: true,
          monitoring: true
        })
      )
    }))

  it.effect("--open-telemetry and --alert-handler are available", () =>
    Effect.gen(function*() {
      const config = yield* resolve({ localhost: true, open_telemetry: true, alert_handlers: ["http://127.0.0.1:1/"] })
      yield* CloudConfig.checkAvailable(config)
    }))

  it.effect("auth mode is available", () =>
    Effect.gen(function*() {
      const config = yield* resolve({ localhost: true, website: true, auth_username: "u" }, { authPassword: "p" })
      assert.isTrue(CloudConfig.authMode(config))
      yield* CloudConfig.checkAvailable(config)
    }))
})
