/**
 * The run's configuration: every Tezt cloud option (reference §3.1), where it comes from (CLI, `--config-file`
 * JSON, environment) and the defaults cascade (§7.20). The option table below is the single source the CLI flags,
 * the config-file schema, the README table and the tests are all derived from.
 *
 * **Details**
 *
 * Precedence is CLI, then config file, then environment, then default. List options concatenate the config
 * file's values and the CLI's. Secrets (`auth_password`, `slack_bot_token`) are never read from nor written to a
 * config file.
 */
import { Context, Effect, Schema, SchemaIssue } from "effect"
import { Os } from "./AgentConfig.ts"
import * as CloudError from "./CloudError.ts"

/** How an option is spelled and typed on the command line. */
export type OptionKind = "flag" | "int" | "string" | "strings"

export interface OptionSpec {
  /** Long flag name, without the leading dashes. */
  readonly flag: string
  /** The config-file key; `undefined` when the option cannot be set from a config file. */
  readonly key: string | undefined
  readonly kind: OptionKind
  readonly description: string
  /** The default, as a user reads it in help and the README. */
  readonly default: string
  readonly aliases?: ReadonlyArray<string>
  /** For flags: the name of the negated form (`no-<flag>` when omitted, none when `null`). */
  readonly negation?: string | null
  /** Only these literal values are accepted. */
  readonly choices?: ReadonlyArray<string>
  /** Never printed, never written to a file, never read from a config file. */
  readonly secret?: boolean
}

/** Every option of reference §3.1, plus ours (`--agent-runtime`). Order is the help and README order. */
export const options: ReadonlyArray<OptionSpec> = [
  {
    flag: "tezt-cloud",
    key: "tezt_cloud",
    kind: "string",
    default: "$TEZT_CLOUD",
    description: "Namespace of the run; every resource name derives from it. Required."
  },
  {
    flag: "config-file",
    key: undefined,
    kind: "string",
    default: "none",
    description: "JSON file of options (snake_case keys); the CLI overrides it, lists concatenate."
  },
  {
    flag: "localhost",
    key: "localhost",
    kind: "flag",
    default: "false",
    negation: "cloud",
    description: "Run agents on this machine (Docker containers when an engine answers, else process sandboxes)."
  },
  {
    flag: "agent-runtime",
    key: "agent_runtime",
    kind: "string",
    default: "auto",
    choices: ["auto", "process", "docker"],
    description: "With --localhost: force process sandboxes or Docker containers."
  },
  {
    flag: "ssh-host",
    key: "ssh_host",
    kind: "string",
    default: "none",
    description: "Deploy onto [user@]host[:port] over ssh (user defaults to $USER, port to 22)."
  },
  {
    flag: "ssh-private-key",
    key: undefined,
    kind: "string",
    default: "~/.ssh/<ns>-tf",
    description: "Private key used for every ssh connection instead of the generated one."
  },
  {
    flag: "insecure-host-keys",
    key: "insecure_host_keys",
    kind: "flag",
    default: "false",
    description:
      "Accept any ssh host key (Tezt cloud's StrictHostKeyChecking=no); otherwise trusted on first use, then checked."
  },
  {
    flag: "ssh-max-channels",
    key: "ssh_max_channels",
    kind: "int",
    default: "8",
    description: "Commands run at once on one ssh host (below sshd's MaxSessions 10); more wait their turn."
  },
  {
    flag: "proxy",
    key: "proxy",
    kind: "flag",
    default: "false",
    description: "Run the orchestrator itself on a remote proxy VM."
  },
  {
    flag: "monitoring",
    key: "monitoring",
    kind: "flag",
    default: "false",
    description: "Run netdata (port 19999) on each agent."
  },
  {
    flag: "destroy",
    key: "destroy",
    kind: "flag",
    default: "false",
    description: "Destroy VMs at the end of the run (they are kept otherwise)."
  },
  {
    flag: "keep-alive",
    key: "keep_alive",
    kind: "flag",
    default: "false",
    description: "Wait for <enter> before tearing down, on success and on failure."
  },
  { flag: "project-id", key: "project_id", kind: "string", default: "gcloud's project", description: "GCP project." },
  {
    flag: "vms-limit",
    key: "vms_limit",
    kind: "int",
    default: "none",
    description: "Maximum number of agents; the run fails if the scenario asks for more."
  },
  {
    flag: "vm-base-port",
    key: "vm_base_port",
    kind: "int",
    default: "30000",
    description: "First port of an agent's range (its sshd listens there)."
  },
  {
    flag: "ports-per-vm",
    key: "ports_per_vm",
    kind: "int",
    default: "50",
    description: "Size of each agent's port range."
  },
  { flag: "os", key: "os", kind: "string", default: "cos", choices: ["cos", "debian"], description: "VM OS image." },
  {
    flag: "grafana",
    key: "grafana",
    kind: "flag",
    default: "on in cloud/proxy modes with cos, off with --localhost or --ssh-host",
    description: "Run Grafana."
  },
  {
    flag: "grafana-legacy-source",
    key: "grafana_legacy_source",
    kind: "flag",
    default: "false",
    description: "Snapshot import: name the datasource Prometheus (one snapshot only)."
  },
  {
    flag: "grafana-url",
    key: "grafana_url",
    kind: "string",
    default: "http://127.0.0.1:3000",
    description: "The Grafana --grafana provisions through its HTTP API (token: $TEZT_CLOUD_GRAFANA_TOKEN)."
  },
  {
    flag: "alert-handler",
    key: "alert_handlers",
    kind: "strings",
    default: "[]",
    description: "Alert handler (repeatable); any turns Prometheus on by default."
  },
  {
    flag: "prometheus",
    key: "prometheus",
    kind: "flag",
    default: "= grafana, or on with alert handlers",
    description: "Run Prometheus."
  },
  {
    flag: "prometheus-export",
    key: "prometheus_export",
    kind: "flag",
    default: "true",
    description: "Export a Prometheus snapshot at the end of the run."
  },
  { flag: "prometheus-port", key: "prometheus_port", kind: "int", default: "9090", description: "Prometheus port." },
  {
    flag: "prometheus-export-path",
    key: "prometheus_export_path",
    kind: "string",
    default: "/tmp/<ns>-prometheus-snapshot",
    description: "Where the snapshot is exported."
  },
  {
    flag: "prometheus-snapshots",
    key: "prometheus_snapshots",
    kind: "strings",
    default: "[]",
    description: "path[:port] of snapshots for CLOUD prometheus import (repeatable)."
  },
  {
    flag: "prometheus-scrape-interval",
    key: "prometheus_scrape_interval",
    kind: "int",
    default: "5",
    description: "Prometheus scrape interval, in seconds."
  },
  {
    flag: "process-monitoring",
    key: "process_monitoring",
    kind: "flag",
    default: "= prometheus",
    description: "Run prometheus-process-exporter on each agent."
  },
  {
    flag: "website",
    key: "website",
    kind: "flag",
    default: "= prometheus",
    description: "Serve the run's website and /metrics."
  },
  {
    flag: "website-port",
    key: "website_port",
    kind: "int",
    default: "8080 (80 for a remote orchestrator)",
    description: "Website port."
  },
  {
    flag: "machine-type",
    key: "machine_type",
    kind: "string",
    default: "n1-standard-2",
    description: "GCP machine type."
  },
  { flag: "disk-type", key: "disk_type", kind: "string", default: "pd-ssd", description: "GCP disk type." },
  { flag: "disk-size-gb", key: "disk_size_gb", kind: "int", default: "200", description: "GCP disk size in GB." },
  {
    flag: "dockerfile-alias",
    key: "dockerfile_alias",
    kind: "string",
    default: "<ns>",
    description: "Selects dockerfiles/<alias>.Dockerfile and the image name."
  },
  {
    flag: "max-run-duration",
    key: "max_run_duration",
    kind: "int",
    default: "7200",
    description: "VM time to live, in seconds from creation."
  },
  {
    flag: "no-max-run-duration",
    key: "no_max_run_duration",
    kind: "flag",
    default: "on with --proxy or --os debian",
    negation: null,
    description: "Give VMs no time to live."
  },
  {
    flag: "dns-domain",
    key: "dns_domains",
    kind: "strings",
    aliases: ["dns"],
    default: "[]",
    description: "Domain pointed at the proxy or ssh host (repeatable)."
  },
  {
    flag: "no-dns",
    key: "no_dns",
    kind: "flag",
    aliases: ["no-dns-domain"],
    default: "false",
    negation: null,
    description: "Register no domain, not even the default proxy one."
  },
  {
    flag: "open-telemetry",
    key: "open_telemetry",
    kind: "flag",
    aliases: ["otel"],
    default: "false",
    description: "Run an OpenTelemetry collector and Jaeger."
  },
  { flag: "macosx", key: "macosx", kind: "flag", default: "false", description: "The orchestrator runs on macOS." },
  {
    flag: "check-file-consistency",
    key: "check_file_consistency",
    kind: "flag",
    default: "true (false with --macosx)",
    description: "Agent.copy compares md5 sums and re-copies files that differ."
  },
  {
    flag: "docker-host-network",
    key: "docker_host_network",
    kind: "flag",
    default: "true (false with --macosx)",
    description: "Docker agents use the host network instead of a dedicated one."
  },
  {
    flag: "docker-push",
    key: "push_docker",
    kind: "flag",
    default: "true",
    description: "Push images to the registry (--no-docker-push to skip)."
  },
  {
    flag: "auto-approve",
    key: "auto_approve",
    kind: "flag",
    default: "true",
    description: "Apply infrastructure changes without asking."
  },
  {
    flag: "faketime",
    key: "faketime",
    kind: "string",
    default: "none",
    description: "FAKETIME for agents' commands (libfaketime), e.g. -10d."
  },
  {
    flag: "binaries-path",
    key: "binaries_path",
    kind: "string",
    default: "/tmp/tezt-runners",
    description: "Where binaries live on agents; Agent.copy's default destination."
  },
  {
    flag: "log-rotation",
    key: "log_rotation",
    kind: "int",
    default: "300",
    description: "logrotate count for the run's log file; 0 disables rotation."
  },
  {
    flag: "artifacts-dir",
    key: "artifacts_dir",
    kind: "string",
    default: "<state-dir>/<ns>/runs/<time>",
    description: "Where the run's artifacts go; must not exist."
  },
  {
    flag: "daily-logs-artifacts",
    key: "daily_logs_artifacts",
    kind: "flag",
    default: "false",
    description: "Fetch daemons' daily logs into the artifacts dir."
  },
  {
    flag: "teztale-artifacts",
    key: "teztale_artifacts",
    kind: "flag",
    default: "false",
    description: "Fetch the Teztale database into the artifacts dir."
  },
  {
    flag: "ppx-profiling-traces-artifacts",
    key: "retrieve_ppx_profiling_traces",
    kind: "flag",
    default: "false",
    description: "Fetch profiling traces into the artifacts dir."
  },
  {
    flag: "tc-delay",
    key: "tc_delay",
    kind: "string",
    default: "none",
    description: "MIN,MAX seconds: random network delay per agent."
  },
  {
    flag: "tc-jitter",
    key: "tc_jitter",
    kind: "string",
    default: "none",
    description: "MIN,MAX seconds: random network jitter per agent."
  },
  {
    flag: "auth-username",
    key: "auth_username",
    kind: "string",
    default: "$TEZT_CLOUD_AUTH_USERNAME",
    description: "Basic-auth user for the monitoring UIs."
  },
  {
    flag: "auth-password",
    key: undefined,
    kind: "string",
    default: "$TEZT_CLOUD_AUTH_PASSWORD",
    secret: true,
    description: "Basic-auth password (never in a config file)."
  },
  {
    flag: "slack-channel-id",
    key: "slack_channel_id",
    kind: "string",
    default: "none",
    description: "Slack channel of the notifier."
  },
  {
    flag: "slack-bot-token",
    key: undefined,
    kind: "string",
    default: "$TEZTCLOUD_SLACK_BOT_TOKEN",
    secret: true,
    description: "Slack bot token of the notifier (never in a config file)."
  }
]

/** Config-file keys that exist but take their value from elsewhere: the rejection names the right way. */
const forbiddenKeys: Record<string, string> = {
  auth_password: "secrets are never read from a config file: use --auth-password or $TEZT_CLOUD_AUTH_PASSWORD",
  slack_bot_token: "secrets are never read from a config file: use --slack-bot-token or $TEZTCLOUD_SLACK_BOT_TOKEN",
  ssh_private_key: "not a config-file key: use --ssh-private-key",
  config_file: "a config file cannot include another one"
}

const valueSchema = (spec: OptionSpec): Schema.Top => {
  switch (spec.kind) {
    case "flag":
      return Schema.Boolean
    case "int":
      return Schema.Int
    case "string":
      return spec.choices ? Schema.Literals(spec.choices) : Schema.String
    case "strings":
      return Schema.Array(Schema.String)
  }
}

/** The raw input of a run: one optional value per config-file key (CLI flags are mapped onto the same keys). */
export const Input = Schema.Struct({
  ...Object.fromEntries(
    options.flatMap((spec) => spec.key === undefined ? [] : [[spec.key, Schema.optionalKey(valueSchema(spec))]])
  ),
  scenario_specific: Schema.optionalKey(Schema.Tuple([Schema.String, Schema.Unknown]))
})
export type Input = Record<string, unknown>

/** CLI-only values: secrets and paths that a config file cannot carry. */
export interface CliOnly {
  readonly configFile?: string | undefined
  readonly sshPrivateKey?: string | undefined
  readonly authPassword?: string | undefined
  readonly slackBotToken?: string | undefined
}

export type AgentRuntime = "auto" | "process" | "docker"
export type Mode = "localhost" | "cloud" | "host" | "orchestrator" | "ssh-host"

export interface SshHost {
  readonly user: string
  readonly host: string
  readonly port: number
}

export interface Range {
  readonly min: number
  readonly max: number
}

/** The effective configuration of a run. Secrets are kept out of `toJson`. */
export interface CloudConfig {
  readonly namespace: string
  readonly mode: Mode
  readonly localhost: boolean
  readonly agentRuntime: AgentRuntime
  readonly sshHost: SshHost | undefined
  readonly sshPrivateKey: string | undefined
  readonly insecureHostKeys: boolean
  readonly sshMaxChannels: number
  readonly proxy: boolean
  readonly monitoring: boolean
  readonly destroy: boolean
  readonly keepAlive: boolean
  readonly projectId: string | undefined
  readonly vmsLimit: number | undefined
  readonly vmBasePort: number
  readonly portsPerVm: number
  readonly os: Os
  readonly grafana: boolean
  readonly grafanaLegacySource: boolean
  readonly grafanaUrl: string
  /** From `$TEZT_CLOUD_GRAFANA_TOKEN` only; never written anywhere. */
  readonly grafanaToken: string | undefined
  readonly alertHandlers: ReadonlyArray<string>
  readonly prometheus: boolean
  readonly prometheusExport: boolean
  readonly prometheusPort: number
  readonly prometheusExportPath: string
  readonly prometheusSnapshots: ReadonlyArray<{ readonly path: string; readonly port: number }>
  readonly prometheusScrapeInterval: number
  readonly processMonitoring: boolean
  readonly website: boolean
  readonly websitePort: number
  readonly machineType: string
  readonly diskType: string | undefined
  readonly diskSizeGb: number | undefined
  readonly dockerfileAlias: string
  readonly maxRunDuration: number | undefined
  readonly dnsDomains: ReadonlyArray<string>
  readonly noDns: boolean
  readonly openTelemetry: boolean
  readonly macosx: boolean
  readonly checkFileConsistency: boolean
  readonly dockerHostNetwork: boolean
  readonly pushDocker: boolean
  readonly autoApprove: boolean
  readonly faketime: string | undefined
  readonly binariesPath: string
  readonly logRotation: number
  readonly artifactsDir: string | undefined
  readonly dailyLogsArtifacts: boolean
  readonly teztaleArtifacts: boolean
  readonly ppxProfilingTracesArtifacts: boolean
  readonly tcDelay: Range | undefined
  readonly tcJitter: Range | undefined
  readonly authUsername: string | undefined
  readonly authPassword: string | undefined
  readonly slackChannelId: string | undefined
  readonly slackBotToken: string | undefined
  readonly scenarioSpecific: readonly [string, unknown] | undefined
}

/** The current run's configuration, as a service. */
export class CurrentConfig extends Context.Service<CurrentConfig, CloudConfig>()("@tezt-cloud/core/CloudConfig") {}

/** What a config file looks like when it is not even JSON, or not an object of known keys and right types. */
export const decodeFile = (path: string, text: string): Effect.Effect<Input, CloudError.CloudError> =>
  Effect.gen(function*() {
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      // V8 quotes the offending text, newlines included: the message must stay one line.
      catch: (e) =>
        CloudError.config(
          "--config-file",
          `${path} is not valid JSON (${CloudError.messageOf(e).replaceAll(/\s+/g, " ")})`
        )
    })
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* CloudError.config("--config-file", `${path} must hold a JSON object of options`)
    }
    for (const key of Object.keys(json)) {
      // Own keys only: "constructor" or "__proto__" must read as unknown keys, not as Object's members.
      if (Object.hasOwn(forbiddenKeys, key)) {
        return yield* CloudError.config(`${path}: key "${key}"`, forbiddenKeys[key]!)
      }
      if (!Object.hasOwn(Input.fields, key)) {
        return yield* CloudError.config(
          `${path}: key "${key}"`,
          `unknown option${suggest(key)}; keys are the snake_case names of the CLI options`
        )
      }
    }
    return yield* decodeInput(json, `${path}: key`)
  })

/** Validates raw values (from the CLI or a file) against the option types, naming the first bad key. */
export const decodeInput = (raw: unknown, where: string): Effect.Effect<Input, CloudError.CloudError> =>
  Schema.decodeUnknownEffect(Input)(raw, { onExcessProperty: "error", errors: "first", reportInput: true }).pipe(
    Effect.mapError((error) => {
      const [key, message] = firstIssue(error.issue)
      return CloudError.config(`${where} "${key}"`, message)
    })
  )

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

/** The path and one-line message of the first issue, e.g. `["vm_base_port", "Expected number, got \"abc\""]`. */
const firstIssue = (issue: SchemaIssue.Issue): readonly [string, string] => {
  const first = formatIssue(issue).issues[0]
  const key = (first?.path ?? []).map((p) => String(typeof p === "object" ? p.key : p)).join(".")
  return [key, (first?.message ?? "invalid value").replaceAll(/\s+/g, " ")]
}

const suggest = (key: string): string => {
  const known = Object.keys(Input.fields)
  const close = known.find((k) => k.replaceAll("_", "") === key.replaceAll(/[-_]/g, "").toLowerCase())
  return close === undefined ? "" : ` (did you mean "${close}"?)`
}

/** CLI over file; list options concatenate (file first). */
export const merge = (file: Input, cli: Input): Input => {
  const out: Record<string, unknown> = { ...file }
  for (const [key, value] of Object.entries(cli)) {
    if (value === undefined) continue
    const before = out[key]
    out[key] = Array.isArray(value) && Array.isArray(before) ? [...before, ...value] : value
  }
  return out
}

/** `[user@]host[:port]` */
export const parseSshHost = (text: string, defaultUser: string): Effect.Effect<SshHost, CloudError.CloudError> => {
  const match = /^(?:([^@\s]+)@)?([^@:\s]+)(?::(\d+))?$/.exec(text)
  const port = match?.[3] === undefined ? 22 : Number(match[3])
  if (match === null || !validPort(port)) {
    return Effect.fail(CloudError.config("--ssh-host", `"${text}" is not [user@]host[:port], e.g. root@10.0.0.5:22`))
  }
  return Effect.succeed({ user: match[1] ?? defaultUser, host: match[2]!, port })
}

const parseRange = (
  option: string,
  text: string | undefined
): Effect.Effect<Range | undefined, CloudError.CloudError> => {
  if (text === undefined) return Effect.succeed(undefined)
  // `Number("")` is 0: an empty bound (",5", "1,") must be refused, not read as 0.
  const parts = text.split(",").map((s) => s.trim() === "" ? Number.NaN : Number(s))
  const [min, max] = parts
  if (parts.length !== 2 || !Number.isFinite(min) || !Number.isFinite(max) || min! < 0 || min! > max!) {
    return Effect.fail(CloudError.config(option, `"${text}" is not MIN,MAX seconds with 0 ≤ MIN ≤ MAX, e.g. 0.1,0.5`))
  }
  return Effect.succeed({ min: min!, max: max! })
}

const httpUrl = (option: string, text: string): Effect.Effect<string, CloudError.CloudError> =>
  /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(text)
    ? Effect.succeed(text.replace(/\/+$/, ""))
    : Effect.fail(CloudError.config(option, `"${text}" is not an http(s) URL such as http://127.0.0.1:3000`))

const validPort = (port: number) => Number.isInteger(port) && port >= 1 && port <= 65535

const namespacePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/

/** The environment variables the configuration reads. */
export interface Environment {
  readonly TEZT_CLOUD?: string | undefined
  readonly TEZT_CLOUD_AUTH_USERNAME?: string | undefined
  readonly TEZT_CLOUD_AUTH_PASSWORD?: string | undefined
  readonly TEZTCLOUD_SLACK_BOT_TOKEN?: string | undefined
  readonly TEZT_CLOUD_GRAFANA_TOKEN?: string | undefined
  readonly USER?: string | undefined
}

/**
 * Applies defaults and the cascade, reads the environment and validates every value. Fails on the first bad
 * option with its name and the fix.
 */
export const resolve = (
  input: Input,
  cliOnly: CliOnly,
  env: Environment
): Effect.Effect<CloudConfig, CloudError.CloudError> =>
  Effect.gen(function*() {
    const get = <A>(key: string): A | undefined => input[key] as A | undefined
    const bool = (key: string, fallback: boolean): boolean => get<boolean>(key) ?? fallback
    const int = (key: string, flag: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
      Effect.gen(function*() {
        const value = get<number>(key) ?? fallback
        if (value < min || value > max) {
          return yield* CloudError.config(
            `--${flag}`,
            `${value} is out of range: give a whole number from ${min} to ${max}`
          )
        }
        return value
      })
    const port = (key: string, flag: string, fallback: number) => int(key, flag, fallback, 1, 65535)

    const namespace = get<string>("tezt_cloud") ?? nonEmpty(env.TEZT_CLOUD)
    if (namespace === undefined) {
      return yield* CloudError.config(
        "--tezt-cloud",
        "the tezt-cloud value should be set. Either via the CLI (--tezt-cloud NAME) or via the environment variable 'TEZT_CLOUD'"
      )
    }
    if (!namespacePattern.test(namespace)) {
      return yield* CloudError.config(
        "--tezt-cloud",
        `"${namespace}" is not a valid namespace: use letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit)`
      )
    }

    const localhost = bool("localhost", false)
    const proxy = bool("proxy", false)
    const sshHostText = get<string>("ssh_host")
    if (sshHostText !== undefined && (proxy || localhost)) {
      return yield* CloudError.config(
        "--ssh-host",
        `cannot be combined with --${proxy ? "proxy" : "localhost"}: choose one backend`
      )
    }
    const sshHost = sshHostText === undefined ? undefined : yield* parseSshHost(sshHostText, env.USER ?? "root")
    const mode: Mode = sshHost !== undefined
      ? "ssh-host"
      : proxy
      ? localhost ? "orchestrator" : "host"
      : localhost
      ? "localhost"
      : "cloud"

    const macosx = bool("macosx", false)
    const os = get<Os>("os") ?? "cos"
    const alertHandlers = get<ReadonlyArray<string>>("alert_handlers") ?? []
    // §7.20: the cascade. Localhost turns everything off by default; cloud and proxy modes turn Grafana on (COS).
    // An ssh host is the user's own machine, like localhost: nothing runs there unless asked for.
    const grafana = bool("grafana", (mode === "cloud" || proxy) && os === "cos")
    const prometheus = bool("prometheus", grafana || alertHandlers.length > 0)
    const website = bool("website", prometheus)
    const processMonitoring = bool("process_monitoring", prometheus)
    const noMaxRunDuration = bool("no_max_run_duration", proxy || os !== "cos")
    const maxRunDuration = yield* int("max_run_duration", "max-run-duration", 7200, 1)

    const vmsLimitRaw = get<number>("vms_limit")
    const vmsLimit = vmsLimitRaw === undefined ? undefined : yield* int("vms_limit", "vms-limit", 0, 0)
    const vmBasePort = yield* port("vm_base_port", "vm-base-port", 30000)
    const portsPerVm = yield* int("ports_per_vm", "ports-per-vm", 50, 2, 65535 - vmBasePort + 1)
    const prometheusPort = yield* port("prometheus_port", "prometheus-port", 9090)
    const websitePort = yield* port("website_port", "website-port", proxy && localhost ? 80 : 8080)

    const snapshots = yield* Effect.forEach(get<ReadonlyArray<string>>("prometheus_snapshots") ?? [], (text, i) => {
      const match = /^(.+?)(?::(\d+))?$/.exec(text)!
      const snapshotPort = match[2] === undefined ? prometheusPort + i : Number(match[2])
      return validPort(snapshotPort)
        ? Effect.succeed({ path: match[1]!, port: snapshotPort })
        : Effect.fail(CloudError.config("--prometheus-snapshots", `"${text}": the port must be from 1 to 65535`))
    })

    const authUsername = get<string>("auth_username") ?? nonEmpty(env.TEZT_CLOUD_AUTH_USERNAME)
    const authPassword = cliOnly.authPassword ?? nonEmpty(env.TEZT_CLOUD_AUTH_PASSWORD)
    if ((authUsername === undefined) !== (authPassword === undefined)) {
      return yield* CloudError.config(
        authUsername === undefined ? "--auth-username" : "--auth-password",
        "auth mode needs both a user name and a password (CLI or $TEZT_CLOUD_AUTH_USERNAME/$TEZT_CLOUD_AUTH_PASSWORD)"
      )
    }
    if (authUsername !== undefined && macosx) {
      return yield* CloudError.config("--auth-username", "auth mode is not supported with --macosx")
    }

    const artifactsDir = get<string>("artifacts_dir")
    return {
      namespace,
      mode,
      localhost,
      agentRuntime: get<AgentRuntime>("agent_runtime") ?? "auto",
      sshHost,
      sshPrivateKey: cliOnly.sshPrivateKey,
      insecureHostKeys: bool("insecure_host_keys", false),
      sshMaxChannels: yield* int("ssh_max_channels", "ssh-max-channels", 8, 1, 64),
      proxy,
      monitoring: bool("monitoring", false),
      destroy: bool("destroy", false),
      keepAlive: bool("keep_alive", false),
      projectId: get<string>("project_id"),
      vmsLimit,
      vmBasePort,
      portsPerVm,
      os,
      grafana,
      grafanaLegacySource: bool("grafana_legacy_source", false),
      grafanaUrl: yield* httpUrl("--grafana-url", get<string>("grafana_url") ?? "http://127.0.0.1:3000"),
      grafanaToken: nonEmpty(env.TEZT_CLOUD_GRAFANA_TOKEN),
      alertHandlers,
      prometheus,
      prometheusExport: bool("prometheus_export", true),
      prometheusPort,
      prometheusExportPath: get<string>("prometheus_export_path") ?? `/tmp/${namespace}-prometheus-snapshot`,
      prometheusSnapshots: snapshots,
      prometheusScrapeInterval: yield* int("prometheus_scrape_interval", "prometheus-scrape-interval", 5, 1),
      processMonitoring,
      website,
      websitePort,
      machineType: get<string>("machine_type") ?? "n1-standard-2",
      diskType: get<string>("disk_type"),
      diskSizeGb: get<number>("disk_size_gb") === undefined
        ? undefined
        : yield* int("disk_size_gb", "disk-size-gb", 0, 1),
      dockerfileAlias: get<string>("dockerfile_alias") ?? namespace,
      maxRunDuration: noMaxRunDuration ? undefined : maxRunDuration,
      dnsDomains: (get<ReadonlyArray<string>>("dns_domains") ?? []).map((d) => d.endsWith(".") ? d : `${d}.`),
      noDns: bool("no_dns", false),
      openTelemetry: bool("open_telemetry", false),
      macosx,
      checkFileConsistency: bool("check_file_consistency", !macosx),
      dockerHostNetwork: bool("docker_host_network", !macosx),
      pushDocker: bool("push_docker", true),
      autoApprove: bool("auto_approve", true),
      faketime: get<string>("faketime"),
      binariesPath: get<string>("binaries_path") ?? "/tmp/tezt-runners",
      logRotation: yield* int("log_rotation", "log-rotation", 300, 0),
      artifactsDir,
      dailyLogsArtifacts: bool("daily_logs_artifacts", false),
      teztaleArtifacts: bool("teztale_artifacts", false),
      ppxProfilingTracesArtifacts: bool("retrieve_ppx_profiling_traces", false),
      tcDelay: yield* parseRange("--tc-delay", get<string>("tc_delay")),
      tcJitter: yield* parseRange("--tc-jitter", get<string>("tc_jitter")),
      authUsername,
      authPassword,
      slackChannelId: get<string>("slack_channel_id"),
      slackBotToken: cliOnly.slackBotToken ?? nonEmpty(env.TEZTCLOUD_SLACK_BOT_TOKEN),
      scenarioSpecific: get<readonly [string, unknown]>("scenario_specific")
    } satisfies CloudConfig
  })

const nonEmpty = (s: string | undefined): string | undefined => s === undefined || s === "" ? undefined : s

/**
 * The effective configuration as a config file would hold it (snake_case keys), secrets removed. Written to
 * `<artifacts-dir>/configuration.json`; feeding it back with `--config-file` reproduces the run.
 */
export const toJson = (config: CloudConfig): Record<string, unknown> => {
  const json: Record<string, unknown> = {
    tezt_cloud: config.namespace,
    localhost: config.localhost,
    agent_runtime: config.agentRuntime,
    ssh_host: config.sshHost && `${config.sshHost.user}@${config.sshHost.host}:${config.sshHost.port}`,
    insecure_host_keys: config.insecureHostKeys,
    ssh_max_channels: config.sshMaxChannels,
    proxy: config.proxy,
    monitoring: config.monitoring,
    destroy: config.destroy,
    keep_alive: config.keepAlive,
    project_id: config.projectId,
    vms_limit: config.vmsLimit,
    vm_base_port: config.vmBasePort,
    ports_per_vm: config.portsPerVm,
    os: config.os,
    grafana: config.grafana,
    grafana_legacy_source: config.grafanaLegacySource,
    grafana_url: config.grafanaUrl,
    alert_handlers: config.alertHandlers,
    prometheus: config.prometheus,
    prometheus_export: config.prometheusExport,
    prometheus_port: config.prometheusPort,
    prometheus_export_path: config.prometheusExportPath,
    prometheus_snapshots: config.prometheusSnapshots.map((s) => `${s.path}:${s.port}`),
    prometheus_scrape_interval: config.prometheusScrapeInterval,
    process_monitoring: config.processMonitoring,
    website: config.website,
    website_port: config.websitePort,
    machine_type: config.machineType,
    disk_type: config.diskType,
    disk_size_gb: config.diskSizeGb,
    dockerfile_alias: config.dockerfileAlias,
    max_run_duration: config.maxRunDuration,
    no_max_run_duration: config.maxRunDuration === undefined,
    dns_domains: config.dnsDomains,
    no_dns: config.noDns,
    open_telemetry: config.openTelemetry,
    macosx: config.macosx,
    check_file_consistency: config.checkFileConsistency,
    docker_host_network: config.dockerHostNetwork,
    push_docker: config.pushDocker,
    auto_approve: config.autoApprove,
    faketime: config.faketime,
    binaries_path: config.binariesPath,
    log_rotation: config.logRotation,
    artifacts_dir: config.artifactsDir,
    daily_logs_artifacts: config.dailyLogsArtifacts,
    teztale_artifacts: config.teztaleArtifacts,
    retrieve_ppx_profiling_traces: config.ppxProfilingTracesArtifacts,
    tc_delay: config.tcDelay && `${config.tcDelay.min},${config.tcDelay.max}`,
    tc_jitter: config.tcJitter && `${config.tcJitter.min},${config.tcJitter.max}`,
    auth_username: config.authUsername,
    slack_channel_id: config.slackChannelId,
    scenario_specific: config.scenarioSpecific
  }
  return Object.fromEntries(Object.entries(json).filter(([, v]) => v !== undefined))
}

/**
 * Refuses, before anything is created, options whose backend or subsystem this build does not have yet. Each
 * error names the option and what to use instead.
 */
export const checkAvailable = (config: CloudConfig): Effect.Effect<void, CloudError.CloudError> => {
  const missing: Array<readonly [string, string]> = []
  if (config.mode === "host" || config.mode === "orchestrator") missing.push(["--proxy", "run with --localhost"])
  // Causes before consequences of the §7.20 cascade (alert handlers → Prometheus → website…), so the option
  // named is one the user gave.
  const off: ReadonlyArray<readonly [boolean, string]> = [
    [config.alertHandlers.length > 0, "--alert-handler"],
    [config.openTelemetry, "--open-telemetry"],
    [config.authUsername !== undefined, "--auth-username"],
    [config.faketime !== undefined && config.mode !== "ssh-host", "--faketime"],
    [config.tcDelay !== undefined, "--tc-delay"],
    [config.tcJitter !== undefined, "--tc-jitter"],
    [config.dnsDomains.length > 0, "--dns-domain"]
  ]
  for (const [on, flag] of off) if (on) missing.push([flag, `drop ${flag}`])
  const first = missing[0]
  return first === undefined
    ? Effect.void
    : Effect.fail(CloudError.notAvailable(first[0], `this build does not have it yet; ${first[1]}`))
}
