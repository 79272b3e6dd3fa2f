/**
 * The run's configuration: every option of a run, where its value comes from (CLI, `--config-file` JSON,
 * environment), its default and the defaults cascade (what each mode turns on by default). The option table
 * `options` is the single source of the options: the CLI flags, the config-file schema (`Input`), the
 * `CloudConfig` schema and type, `toJson`, the README's option table and the tests are all derived from it.
 *
 * **Details**
 *
 * - Precedence is CLI, then config file, then environment, then default. List options concatenate the config
 *   file's values and the CLI's. Secrets (`auth_password`, `slack_bot_token`) are never read from nor written to
 *   a config file.
 * - An entry of the table says how its option is resolved when no other option bears on it (its default, its
 *   bounds, the environment variable it falls back to). What depends on other options (the backend choice, the
 *   monitoring cascade, defaults derived from the namespace, the mode or `--macosx`) and the checks across
 *   options are the explicit code of `resolve`.
 * - An option that only one backend reads is declared in that backend's block of the table (`owned`): `--help`
 *   and the README list it under the backend, and the backend's `Backend.config` slice takes it with `ownedBy`.
 */
import { Context, Effect, Schema, SchemaIssue, Struct } from "effect"
import { Os } from "./AgentConfig.ts"
import { namespacePattern } from "./AgentsControlProtocol.cjs"
import * as Alert from "./Alert.ts"
import * as CloudError from "./CloudError.ts"
import * as Faketime from "./Faketime.ts"
import * as Suggest from "./Suggest.ts"

/** How an option is spelled and typed on the command line. */
export type OptionKind = "flag" | "int" | "string" | "strings"

/** The backends that own options of their own, and what those options are about (their `--help` and README heading). */
export const backendTags = {
  ssh: "ssh connections (`--ssh-host`, and every agent reached over ssh: Docker containers, VMs)",
  docker: "Docker agents (`--localhost` with a Docker engine)",
  gcp: "GCP VMs (the default mode)"
} as const
export type BackendTag = keyof typeof backendTags

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
 * `--agent-runtime`: with `--localhost`, containers when an engine answers, or always processes, or containers; with
 * `--ssh-host`, process sandboxes unless `docker` (containers of the host's engine).
 */
export const AgentRuntime = Schema.Literals(["auto", "process", "docker"])
export type AgentRuntime = typeof AgentRuntime.Type

/** A summary of the backend choice, in Tezt cloud's words (the monitoring cascade and messages use it). */
export const Mode = Schema.Literals(["localhost", "cloud", "host", "orchestrator", "ssh-host"])
export type Mode = typeof Mode.Type

/**
 * `--ssh-host [user@]host[:port]`, resolved: `defaults` names what was not given (the user, `$USER`; the port, 22),
 * which the ssh backend takes from the host's block of the user's ssh config when it has one.
 */
export const SshHost = Schema.Struct({
  user: Schema.String,
  host: Schema.String,
  port: Schema.Number,
  defaults: Schema.optionalKey(Schema.Array(Schema.Literals(["user", "port"])))
})
export type SshHost = typeof SshHost.Type

const Localhost = Schema.TaggedStruct("Localhost", { runtime: AgentRuntime })
const Gcp = Schema.TaggedStruct("Gcp", {})

/**
 * The backend a run asks for: the one place where `--localhost`, `--agent-runtime`, `--ssh-host` and `--proxy`
 * meet. What a backend needs of its choice (an ssh host's target, a local runtime) is in its case only.
 */
export const BackendChoice = Schema.Union([
  Localhost,
  /** `runtime`: `docker` runs the agents as containers of the host's engine; otherwise process sandboxes. */
  Schema.TaggedStruct("SshHost", { target: SshHost, runtime: Schema.optionalKey(AgentRuntime) }),
  Gcp,
  /** `--proxy`: the orchestrator itself runs on a remote VM, which drives the `inner` backend. */
  Schema.TaggedStruct("Proxy", { inner: Schema.Union([Localhost, Gcp]) })
])
export type BackendChoice = typeof BackendChoice.Type

/** `MIN,MAX` seconds (`--tc-delay`, `--tc-jitter`). */
export const Range = Schema.Struct({ min: Schema.Number, max: Schema.Number })
export type Range = typeof Range.Type

/** A config file's `scenario_specific`: a scenario's own settings, e.g. `["DAL", {"bakers": 3}]`. */
const ScenarioSpecific = Schema.Tuple([Schema.String, Schema.Unknown])

/** A snapshot for `CLOUD prometheus import` and the port its Prometheus serves it on. */
export const Snapshot = Schema.Struct({ path: Schema.String, port: Schema.Number })
export type Snapshot = typeof Snapshot.Type

/**
 * One option: how it is spelled (flag, config-file key), documented, typed and resolved. The public view of an
 * entry of `options`; the table's own entries are more precisely typed, which `CloudConfig` is computed from.
 */
export interface OptionSpec {
  /** Long flag name, without the leading dashes. */
  readonly flag: string
  /** The config-file key; `undefined` when the option cannot be set from a config file (it is in `CliOnly`). */
  readonly key: string | undefined
  /** Its name in the code: its `CloudConfig` field when it has a `schema`, its `CliOnly` field when it has no key. */
  readonly field: string
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
  /** The backend that alone reads it; none: any run may. */
  readonly backend?: BackendTag
  /** The environment variable it falls back to when neither the CLI nor the config file gives it. */
  readonly env?: keyof Environment
  /**
   * The schema of its `CloudConfig` field; none when it only feeds another field (`--ssh-host` and
   * `--agent-runtime` the backend choice, `--no-max-run-duration` the time to live) or the CLI (`--config-file`).
   */
  readonly schema?: Schema.Top
  /**
   * Its value from the value given (`undefined`: none), when no other option bears on it; none when `resolve`
   * computes it from other options.
   */
  readonly resolve?: (given: unknown, flag: string) => Effect.Effect<unknown, CloudError.CloudError>
  /** Its config-file value from its resolved value, for `toJson` (the value itself when omitted). */
  readonly encode?: (value: never) => unknown
  /** For an option without a field: its config-file value, read from what it feeds. */
  readonly write?: (config: ChoiceFields) => unknown
}

/** What the options without a field of their own feed, as `write` reads it. */
export interface ChoiceFields {
  readonly backend: BackendChoice
  readonly maxRunDuration: number | undefined
}

const nonEmpty = (s: string | undefined): string | undefined => s === undefined || s === "" ? undefined : s

const validPort = (port: number) => Number.isInteger(port) && port >= 1 && port <= 65535

/** Refuses a whole number out of `[min, max]`, naming the option. */
const checkInt = (flag: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  value < min || value > max
    ? Effect.fail(CloudError.config(`--${flag}`, `${value} is out of range: give a whole number from ${min} to ${max}`))
    : Effect.succeed(value)

const httpUrl = (option: string, text: string): Effect.Effect<string, CloudError.CloudError> =>
  /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/.test(text)
    ? Effect.succeed(text.replace(/\/+$/, ""))
    : Effect.fail(CloudError.config(option, `"${text}" is not an http(s) URL such as http://127.0.0.1:3000`))

// The kinds of entries. Each gives an entry its `kind`, `schema`, documented `default` and `resolve`; an entry's
// own properties, written after, refine them.

/** An on/off flag, `fallback` when not given. */
const toggle = (fallback: boolean) =>
  ({
    kind: "flag",
    schema: Schema.Boolean,
    default: String(fallback),
    resolve: (given: unknown) => Effect.succeed((given as boolean | undefined) ?? fallback)
  }) as const

interface Bounds {
  readonly min: number
  readonly max?: number
}

/** A whole number within bounds: `fallback` when not given, or none when there is no fallback. */
function int(bounds: Bounds & { readonly fallback: number }): {
  readonly kind: "int"
  readonly schema: typeof Schema.Int
  readonly default: string
  readonly resolve: (given: unknown, flag: string) => Effect.Effect<number, CloudError.CloudError>
}
function int(bounds: Bounds): {
  readonly kind: "int"
  readonly schema: Schema.UndefinedOr<typeof Schema.Int>
  readonly default: string
  readonly resolve: (given: unknown, flag: string) => Effect.Effect<number | undefined, CloudError.CloudError>
}
function int(bounds: Bounds & { readonly fallback?: number }): {
  readonly kind: "int"
  readonly schema: Schema.Top
  readonly default: string
  readonly resolve: (given: unknown, flag: string) => Effect.Effect<number | undefined, CloudError.CloudError>
} {
  const { fallback, max, min } = bounds
  return {
    kind: "int",
    schema: fallback === undefined ? Schema.UndefinedOr(Schema.Int) : Schema.Int,
    default: fallback === undefined ? "none" : String(fallback),
    resolve: (given: unknown, flag: string) => {
      const value = (given as number | undefined) ?? fallback
      return value === undefined ? Effect.succeed(undefined) : checkInt(flag, value, min, max)
    }
  } as const
}

/** A port: a whole number from 1 to 65535. */
const tcpPort = (fallback: number) => int({ fallback, min: 1, max: 65535 })

/** A text: `fallback` when not given, or none when there is no fallback; `check` refuses or normalizes it. */
function str(fallback: string, check?: Check): {
  readonly kind: "string"
  readonly schema: typeof Schema.String
  readonly default: string
  readonly resolve: (given: unknown, flag: string) => Effect.Effect<string, CloudError.CloudError>
}
function str(): {
  readonly kind: "string"
  readonly schema: Schema.UndefinedOr<typeof Schema.String>
  readonly default: string
  readonly resolve: (given: unknown) => Effect.Effect<string | undefined>
}
function str(fallback?: string, check?: Check): {
  readonly kind: "string"
  readonly schema: Schema.Top
  readonly default: string
  readonly resolve: (given: unknown, flag: string) => Effect.Effect<string | undefined, CloudError.CloudError>
} {
  return {
    kind: "string",
    schema: fallback === undefined ? Schema.UndefinedOr(Schema.String) : Schema.String,
    default: fallback ?? "none",
    resolve: (given: unknown, flag: string) => {
      const value = (given as string | undefined) ?? fallback
      return value === undefined || check === undefined ? Effect.succeed(value) : check(`--${flag}`, value)
    }
  } as const
}

/** Refuses a text given for `option`, or normalizes it. */
type Check = (option: string, text: string) => Effect.Effect<string, CloudError.CloudError>

/** One of the literals of `schema`, `fallback` when not given. */
const choice = <const L extends ReadonlyArray<string>>(schema: Schema.Literals<L>, fallback: L[number]) =>
  ({
    kind: "string",
    schema,
    choices: schema.literals,
    default: fallback,
    resolve: (given: unknown) => Effect.succeed((given as L[number] | undefined) ?? fallback)
  }) as const

/** A repeatable text; the given values, each through `each`. */
const strs = (each: (value: string) => string = (value) => value) =>
  ({
    kind: "strings",
    schema: Schema.Array(Schema.String),
    default: "[]",
    resolve: (given: unknown) => Effect.succeed(((given as ReadonlyArray<string> | undefined) ?? []).map(each))
  }) as const

/** `MIN,MAX` seconds, or none. */
const range = {
  kind: "string",
  schema: Schema.UndefinedOr(Range),
  default: "none",
  resolve: (given: unknown, flag: string): Effect.Effect<Range | undefined, CloudError.CloudError> => {
    const text = given as string | undefined
    if (text === undefined) return Effect.succeed(undefined)
    // `Number("")` is 0: an empty bound (",5", "1,") must be refused, not read as 0.
    const parts = text.split(",").map((s) => s.trim() === "" ? Number.NaN : Number(s))
    const [min, max] = parts
    if (parts.length !== 2 || !Number.isFinite(min) || !Number.isFinite(max) || min! < 0 || min! > max!) {
      return Effect.fail(
        CloudError.config(`--${flag}`, `"${text}" is not MIN,MAX seconds with 0 ≤ MIN ≤ MAX, e.g. 0.1,0.5`)
      )
    }
    return Effect.succeed({ min: min!, max: max! })
  },
  encode: (value: Range | undefined) => value && `${value.min},${value.max}`
} as const

/** An option whose value `resolve` computes from other options; `doc` says how, in help and the README. */
const derived = <const K extends OptionKind, S extends Schema.Top>(kind: K, schema: S, doc: string) =>
  ({ kind, schema, default: doc }) as const

/** An entry of the table, kept as precisely typed as it is written. */
const option = <const E extends OptionSpec>(entry: E): E => entry

/** A block of options that only `backend` reads. */
const owned = <const T extends BackendTag, const Es extends ReadonlyArray<OptionSpec>>(backend: T, entries: Es) =>
  entries.map((entry) => ({ ...entry, backend })) as unknown as {
    readonly [I in keyof Es]: Es[I] & { readonly backend: T }
  }

/** An option with no field of its own: it feeds what `resolve` computes, and `write` reads it back from there. */
const feeds = <const O extends { readonly kind: OptionKind; readonly schema?: Schema.Top }>(
  from: O,
  write: (config: ChoiceFields) => unknown
) => {
  const { schema: _, ...rest } = from
  return { ...rest, write }
}

/** `--ssh-host`'s value written back. */
const sshHostText = (target: SshHost) =>
  (target.defaults?.includes("user") ? "" : `${target.user}@`) + target.host +
  (target.defaults?.includes("port") ? "" : `:${target.port}`)

/**
 * Every option, in help and README order: those any run may read, then each backend's own (`owned`). The
 * options of Tezt cloud, plus ours (`--agent-runtime`, `--ssh-host` and its ssh options, `--grafana-url`).
 */
const table = [
  option({
    flag: "tezt-cloud",
    key: "tezt_cloud",
    field: "namespace",
    kind: "string",
    schema: Schema.String,
    env: "TEZT_CLOUD",
    default: "$TEZT_CLOUD",
    description: "Namespace of the run; every resource name derives from it. Required.",
    resolve: (given: unknown) => namespaceOf(given as string | undefined)
  }),
  option({
    flag: "config-file",
    key: undefined,
    field: "configFile",
    kind: "string",
    default: "none",
    description: "JSON file of options (snake_case keys); the CLI overrides it, lists concatenate."
  }),
  option({
    flag: "localhost",
    key: "localhost",
    field: "localhost",
    ...toggle(false),
    negation: "cloud",
    description: "Run agents on this machine (Docker containers when an engine answers, else process sandboxes)."
  }),
  option({
    flag: "agent-runtime",
    key: "agent_runtime",
    field: "agentRuntime",
    ...feeds(choice(AgentRuntime, "auto"), (config) => runtimeOf(config.backend) ?? "auto"),
    description:
      "With --localhost: force process sandboxes or Docker containers. With --ssh-host: docker runs the agents as containers of the host's Docker engine (default: process sandboxes)."
  }),
  option({
    flag: "proxy",
    key: "proxy",
    field: "proxy",
    ...toggle(false),
    description: "Run the orchestrator itself on a remote proxy VM."
  }),
  option({
    flag: "monitoring",
    key: "monitoring",
    field: "monitoring",
    ...toggle(false),
    description: "Run netdata (port 19999) on each agent."
  }),
  option({
    flag: "destroy",
    key: "destroy",
    field: "destroy",
    ...toggle(false),
    description: "Destroy VMs at the end of the run (they are kept otherwise)."
  }),
  option({
    flag: "keep-alive",
    key: "keep_alive",
    field: "keepAlive",
    ...toggle(false),
    description: "Wait for <enter> before tearing down, on success and on failure."
  }),
  option({
    flag: "vms-limit",
    key: "vms_limit",
    field: "vmsLimit",
    ...int({ min: 0 }),
    description: "Maximum number of agents; the run fails if the scenario asks for more."
  }),
  option({
    flag: "vm-base-port",
    key: "vm_base_port",
    field: "vmBasePort",
    ...tcpPort(30000),
    description: "First port of an agent's range (its sshd listens there)."
  }),
  option({
    flag: "ports-per-vm",
    key: "ports_per_vm",
    field: "portsPerVm",
    // From 2 to what fits above --vm-base-port: `resolve` checks it, 50 when not given.
    ...derived("int", Schema.Int, "50"),
    description: "Size of each agent's port range."
  }),
  option({ flag: "os", key: "os", field: "os", ...choice(Os, "cos"), description: "VM OS image." }),
  option({
    flag: "grafana",
    key: "grafana",
    field: "grafana",
    ...derived("flag", Schema.Boolean, "on in cloud/proxy modes with cos, off with --localhost or --ssh-host"),
    description: "Run Grafana."
  }),
  option({
    flag: "grafana-legacy-source",
    key: "grafana_legacy_source",
    field: "grafanaLegacySource",
    ...toggle(false),
    description: "Snapshot import: name the datasource Prometheus (one snapshot only)."
  }),
  option({
    flag: "grafana-url",
    key: "grafana_url",
    field: "grafanaUrl",
    ...str("http://127.0.0.1:3000", httpUrl),
    description: "The Grafana --grafana provisions through its HTTP API (token: $TEZT_CLOUD_GRAFANA_TOKEN)."
  }),
  option({
    flag: "alert-handler",
    key: "alert_handlers",
    field: "alertHandlers",
    ...strs(),
    description:
      "Where every alert goes (repeatable): slack (--slack-channel-id), or a webhook's http(s) URL; any turns Prometheus on by default."
  }),
  option({
    flag: "prometheus",
    key: "prometheus",
    field: "prometheus",
    ...derived("flag", Schema.Boolean, "= grafana, or on with alert handlers"),
    description: "Run Prometheus."
  }),
  option({
    flag: "prometheus-export",
    key: "prometheus_export",
    field: "prometheusExport",
    ...toggle(true),
    description: "Export a Prometheus snapshot at the end of the run."
  }),
  option({
    flag: "prometheus-port",
    key: "prometheus_port",
    field: "prometheusPort",
    ...tcpPort(9090),
    description: "Prometheus port."
  }),
  option({
    flag: "prometheus-export-path",
    key: "prometheus_export_path",
    field: "prometheusExportPath",
    ...derived("string", Schema.String, "/tmp/<ns>-prometheus-snapshot"),
    description: "Where the snapshot is exported."
  }),
  option({
    flag: "prometheus-snapshots",
    key: "prometheus_snapshots",
    field: "prometheusSnapshots",
    ...derived("strings", Schema.Array(Snapshot), "[]"),
    encode: (snapshots: ReadonlyArray<Snapshot>) => snapshots.map((s) => `${s.path}:${s.port}`),
    description: "path[:port] of snapshots for CLOUD prometheus import (repeatable)."
  }),
  option({
    flag: "prometheus-scrape-interval",
    key: "prometheus_scrape_interval",
    field: "prometheusScrapeInterval",
    ...int({ fallback: 5, min: 1 }),
    description: "Prometheus scrape interval, in seconds."
  }),
  option({
    flag: "process-monitoring",
    key: "process_monitoring",
    field: "processMonitoring",
    ...derived("flag", Schema.Boolean, "= prometheus"),
    description: "Run prometheus-process-exporter on each agent."
  }),
  option({
    flag: "website",
    key: "website",
    field: "website",
    ...derived("flag", Schema.Boolean, "= prometheus"),
    description: "Serve the run's website and /metrics."
  }),
  option({
    flag: "website-port",
    key: "website_port",
    field: "websitePort",
    ...derived("int", Schema.Int, "8080 (80 for a remote orchestrator)"),
    description: "Website port."
  }),
  option({
    flag: "dockerfile-alias",
    key: "dockerfile_alias",
    field: "dockerfileAlias",
    ...derived("string", Schema.String, "<ns>"),
    description: "Selects dockerfiles/<alias>.Dockerfile and the image name."
  }),
  option({
    flag: "max-run-duration",
    key: "max_run_duration",
    field: "maxRunDuration",
    // Checked even when --no-max-run-duration drops it; `resolve` does.
    ...int({ fallback: 7200, min: 1 }),
    schema: Schema.UndefinedOr(Schema.Int),
    description: "VM time to live, in seconds from creation."
  }),
  option({
    flag: "no-max-run-duration",
    key: "no_max_run_duration",
    field: "noMaxRunDuration",
    ...feeds(
      { kind: "flag", default: "on with --proxy or --os debian" },
      (config) => config.maxRunDuration === undefined
    ),
    negation: null,
    description: "Give VMs no time to live."
  }),
  option({
    flag: "dns-domain",
    key: "dns_domains",
    field: "dnsDomains",
    ...strs((domain) => domain.endsWith(".") ? domain : `${domain}.`),
    aliases: ["dns"],
    description: "Domain pointed at the proxy or ssh host (repeatable)."
  }),
  option({
    flag: "no-dns",
    key: "no_dns",
    field: "noDns",
    ...toggle(false),
    aliases: ["no-dns-domain"],
    negation: null,
    description: "Register no domain, not even the default proxy one."
  }),
  option({
    flag: "open-telemetry",
    key: "open_telemetry",
    field: "openTelemetry",
    ...toggle(false),
    aliases: ["otel"],
    description: "Export the tool's own spans (OTLP/HTTP, else spans.jsonl) and metrics."
  }),
  option({
    flag: "macosx",
    key: "macosx",
    field: "macosx",
    ...toggle(false),
    description: "The orchestrator runs on macOS."
  }),
  option({
    flag: "check-file-consistency",
    key: "check_file_consistency",
    field: "checkFileConsistency",
    ...derived("flag", Schema.Boolean, "true (false with --macosx)"),
    description: "Agent.copy compares md5 sums and re-copies files that differ."
  }),
  option({
    flag: "docker-push",
    key: "push_docker",
    field: "pushDocker",
    ...toggle(true),
    description: "Push images to the registry (--no-docker-push to skip)."
  }),
  option({
    flag: "auto-approve",
    key: "auto_approve",
    field: "autoApprove",
    ...toggle(true),
    description: "Apply infrastructure changes without asking."
  }),
  option({
    flag: "faketime",
    key: "faketime",
    field: "faketime",
    ...str(),
    resolve: (given: unknown, flag: string) => {
      const spec = given as string | undefined
      const invalid = spec === undefined ? undefined : Faketime.specError(spec)
      return invalid === undefined ? Effect.succeed(spec) : Effect.fail(CloudError.config(`--${flag}`, invalid))
    },
    description: "Skew agents' clocks by a libfaketime spec (--faketime=-10d, +2h, \"@2030-01-01 00:00:00\")."
  }),
  option({
    flag: "binaries-path",
    key: "binaries_path",
    field: "binariesPath",
    ...str("/tmp/tezt-runners"),
    description: "Where binaries live on agents; Agent.copy's default destination."
  }),
  option({
    flag: "log-rotation",
    key: "log_rotation",
    field: "logRotation",
    ...int({ fallback: 300, min: 0 }),
    description: "Daemons' logs on agents (and --log-file) are rotated daily, keeping N old copies; 0: no rotation."
  }),
  option({
    flag: "artifacts-dir",
    key: "artifacts_dir",
    field: "artifactsDir",
    ...str(),
    default: "<state-dir>/<ns>/runs/<time>",
    description: "Where the run's artifacts go; must not exist."
  }),
  option({
    flag: "daily-logs-artifacts",
    key: "daily_logs_artifacts",
    field: "dailyLogsArtifacts",
    ...toggle(false),
    description: "Fetch daemons' daily logs into the artifacts dir."
  }),
  option({
    flag: "teztale-artifacts",
    key: "teztale_artifacts",
    field: "teztaleArtifacts",
    ...toggle(false),
    description: "Fetch the Teztale database into the artifacts dir."
  }),
  option({
    flag: "ppx-profiling-traces-artifacts",
    key: "retrieve_ppx_profiling_traces",
    field: "ppxProfilingTracesArtifacts",
    ...toggle(false),
    description: "Fetch profiling traces into the artifacts dir."
  }),
  option({
    flag: "tc-delay",
    key: "tc_delay",
    field: "tcDelay",
    ...range,
    description: "MIN,MAX seconds: network delay per agent, drawn from a printed seed (README \"Faults and time\")."
  }),
  option({
    flag: "tc-jitter",
    key: "tc_jitter",
    field: "tcJitter",
    ...range,
    description: "MIN,MAX seconds: network jitter per agent, drawn like --tc-delay's."
  }),
  option({
    flag: "auth-username",
    key: "auth_username",
    field: "authUsername",
    ...str(),
    env: "TEZT_CLOUD_AUTH_USERNAME",
    default: "$TEZT_CLOUD_AUTH_USERNAME",
    description: "Basic-auth user for the monitoring UIs."
  }),
  option({
    flag: "auth-password",
    key: undefined,
    field: "authPassword",
    ...str(),
    env: "TEZT_CLOUD_AUTH_PASSWORD",
    default: "$TEZT_CLOUD_AUTH_PASSWORD",
    secret: true,
    description: "Basic-auth password (never in a config file)."
  }),
  option({
    flag: "slack-channel-id",
    key: "slack_channel_id",
    field: "slackChannelId",
    ...str(),
    description: "Slack channel of the notifier (Cloud.notify) and of the slack alert handler."
  }),
  option({
    flag: "slack-bot-token",
    key: undefined,
    field: "slackBotToken",
    ...str(),
    env: "TEZTCLOUD_SLACK_BOT_TOKEN",
    default: "$TEZTCLOUD_SLACK_BOT_TOKEN",
    secret: true,
    description:
      "Slack bot token of the notifier and the slack alert handler (never in a config file; prefer the variable: a command line is seen by ps)."
  }),
  ...owned("ssh", [
    option({
      flag: "ssh-host",
      key: "ssh_host",
      field: "sshHost",
      ...feeds(
        { kind: "string", default: "none" },
        (config) => config.backend._tag === "SshHost" ? sshHostText(config.backend.target) : undefined
      ),
      description:
        "Deploy onto [user@]host[:port] over ssh; host may be a Host alias of your ssh config (user and port default to its block's, else $USER and 22)."
    }),
    option({
      flag: "ssh-config",
      key: "ssh_config",
      field: "sshConfig",
      ...str(),
      default: "~/.ssh/config",
      description:
        "The OpenSSH client config --ssh-host is resolved in (HostName, User, Port, IdentityFile, ProxyJump, StrictHostKeyChecking, UserKnownHostsFile)."
    }),
    option({
      flag: "ssh-jump",
      key: "ssh_jump",
      field: "sshJump",
      ...str(),
      default: "the ssh config's ProxyJump",
      description:
        "Reach --ssh-host through this jump host, [user@]host[:port] (several: comma-separated, as ssh -J); none: directly."
    }),
    option({
      flag: "ssh-private-key",
      key: undefined,
      field: "sshPrivateKey",
      ...str(),
      default: "~/.ssh/<ns>-tf",
      description:
        "Private key tried after your ssh-agent's keys and your ssh config's IdentityFiles, before the generated one."
    }),
    option({
      flag: "insecure-host-keys",
      key: "insecure_host_keys",
      field: "insecureHostKeys",
      ...toggle(false),
      description:
        "Accept any ssh host key (Tezt cloud's StrictHostKeyChecking=no); otherwise trusted on first use, then checked."
    }),
    option({
      flag: "ssh-provision",
      key: "ssh_provision",
      field: "sshProvision",
      ...toggle(false),
      description:
        "With --ssh-host and --agent-runtime docker: install and start Docker on the host and let your user use it, with sudo (otherwise what is missing is only explained)."
    }),
    option({
      flag: "ssh-max-channels",
      key: "ssh_max_channels",
      field: "sshMaxChannels",
      ...int({ fallback: 8, min: 1, max: 64 }),
      description: "Commands run at once on one ssh host (below sshd's MaxSessions 10); more wait their turn."
    })
  ]),
  ...owned("docker", [
    option({
      flag: "docker-host-network",
      key: "docker_host_network",
      field: "dockerHostNetwork",
      ...derived("flag", Schema.Boolean, "true (false with --macosx)"),
      description: "Docker agents use the host network instead of a dedicated one."
    })
  ]),
  ...owned("gcp", [
    option({
      flag: "project-id",
      key: "project_id",
      field: "projectId",
      ...str(),
      default: "gcloud's project",
      description: "GCP project."
    }),
    option({
      flag: "machine-type",
      key: "machine_type",
      field: "machineType",
      ...str("n1-standard-2"),
      description: "GCP machine type."
    }),
    // Left to the GCP backend when not given (its own defaults, documented here), as Tezt cloud leaves them.
    option({
      flag: "disk-type",
      key: "disk_type",
      field: "diskType",
      ...str(),
      default: "pd-ssd",
      description: "GCP disk type."
    }),
    option({
      flag: "disk-size-gb",
      key: "disk_size_gb",
      field: "diskSizeGb",
      ...int({ min: 1 }),
      default: "200",
      description: "GCP disk size in GB."
    })
  ])
]

/** Every option, in help and README order. */
export const options: ReadonlyArray<OptionSpec> = table

type Entry = (typeof table)[number]
type SchemaOf<E> = E extends { readonly schema: infer S extends Schema.Top } ? S : never
type ResolvedOf<E> = E extends {
  readonly resolve: (...args: ReadonlyArray<never>) => Effect.Effect<infer A, CloudError.CloudError>
} ? A
  : never
type GivenOf<E> = E extends { readonly choices: ReadonlyArray<infer C> } ? C
  : E extends { readonly kind: "flag" } ? boolean
  : E extends { readonly kind: "int" } ? number
  : E extends { readonly kind: "strings" } ? ReadonlyArray<string>
  : string

/** The fields of `CloudConfig` the options make: one per entry with a schema. */
type OptionFields = {
  readonly [E in Entry as E extends { readonly schema: Schema.Top } ? E["field"] : never]: SchemaOf<E>
}
/** The values of the options no other option bears on, as each entry's `resolve` makes them. */
type Resolved = {
  readonly [E in Entry as E extends { readonly resolve: unknown } ? E["field"] : never]: ResolvedOf<E>
}
/** What the CLI or the config file gave for each option. */
type Given = { readonly [E in Entry as E["field"]]: GivenOf<E> | undefined }

/** CLI-only values: secrets and paths that a config file cannot carry (the options with no config-file key). */
export type CliOnly = {
  readonly [E in Entry as E["key"] extends string ? never : E["field"]]?: string | undefined
}

/** The effective configuration of a run: a field per option (see `options`), and what the options make together. */
export const CloudConfig = Schema.Struct({
  ...(Object.fromEntries(
    options.flatMap((spec) => spec.schema === undefined ? [] : [[spec.field, spec.schema]])
  ) as OptionFields),
  /** Which backend runs the agents, with what it alone needs. */
  backend: BackendChoice,
  /** `modeOf(backend)`. */
  mode: Mode,
  /** From `$TEZT_CLOUD_GRAFANA_TOKEN` only; never written anywhere. */
  grafanaToken: Schema.UndefinedOr(Schema.String),
  /** The config file's `scenario_specific`. */
  scenarioSpecific: Schema.UndefinedOr(ScenarioSpecific)
})
export type CloudConfig = typeof CloudConfig.Type

type Fields = typeof CloudConfig.fields

/** Fields of `CloudConfig`, by name: what a backend's `Backend.config` slice reads of the run's configuration. */
export const pick = <const Names extends ReadonlyArray<keyof Fields>>(...names: Names) =>
  Struct.pick(CloudConfig.fields, names)

/** The fields of the options `backend` owns, for its `Backend.config` slice. */
export const ownedBy = <T extends BackendTag>(backend: T) =>
  Object.fromEntries(
    options.flatMap((spec) => spec.backend === backend && spec.schema !== undefined ? [[spec.field, spec.schema]] : [])
  ) as {
    readonly [E in Entry as E extends { readonly backend: T; readonly schema: Schema.Top } ? E["field"] : never]:
      SchemaOf<E>
  }

/** The current run's configuration, as a service. */
export class CurrentConfig extends Context.Service<CurrentConfig, CloudConfig>()("@tezt-cloud/core/CloudConfig") {}

/** The mode of a backend choice. */
export const modeOf = (backend: BackendChoice): Mode => {
  switch (backend._tag) {
    case "Localhost":
      return "localhost"
    case "SshHost":
      return "ssh-host"
    case "Gcp":
      return "cloud"
    case "Proxy":
      return backend.inner._tag === "Localhost" ? "orchestrator" : "host"
  }
}

/** The runtime a backend choice asks for, if it runs agents on this machine or on an ssh host. */
export const runtimeOf = (backend: BackendChoice): AgentRuntime | undefined =>
  backend._tag === "Localhost" ? backend.runtime : backend._tag === "Proxy" && backend.inner._tag === "Localhost"
    ? backend.inner.runtime
    : backend._tag === "SshHost"
    ? backend.runtime
    : undefined

/** Whether the run's agents are containers of an ssh host's Docker engine (`--ssh-host … --agent-runtime docker`). */
export const dockerOnSshHost = (backend: BackendChoice) => backend._tag === "SshHost" && backend.runtime === "docker"

const namespaceOf = (namespace: string | undefined): Effect.Effect<string, CloudError.CloudError> =>
  namespace === undefined
    ? Effect.fail(CloudError.config(
      "--tezt-cloud",
      "the tezt-cloud value should be set. Either via the CLI (--tezt-cloud NAME) or via the environment variable 'TEZT_CLOUD'"
    ))
    : namespacePattern.test(namespace)
    ? Effect.succeed(namespace)
    : Effect.fail(CloudError.config(
      "--tezt-cloud",
      `"${namespace}" is not a valid namespace: use letters, digits, '.', '_' or '-' (at most 63, starting with a letter or digit)`
    ))

/** `[user@]host[:port]` */
export const parseSshHost = (text: string, defaultUser: string): Effect.Effect<SshHost, CloudError.CloudError> => {
  const match = /^(?:([^@\s]+)@)?([^@:\s]+)(?::(\d+))?$/.exec(text)
  const port = match?.[3] === undefined ? 22 : Number(match[3])
  if (match === null || !validPort(port)) {
    return Effect.fail(CloudError.config("--ssh-host", `"${text}" is not [user@]host[:port], e.g. root@10.0.0.5:22`))
  }
  const defaults = [
    ...(match[1] === undefined ? ["user" as const] : []),
    ...(match[3] === undefined ? ["port" as const] : [])
  ]
  return Effect.succeed({
    user: match[1] ?? defaultUser,
    host: match[2]!,
    port,
    ...(defaults.length === 0 ? {} : { defaults })
  })
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
  scenario_specific: Schema.optionalKey(ScenarioSpecific)
})
export type Input = Record<string, unknown>

/**
 * Config-file keys of the CLI-only options: they take their value from elsewhere, and the refusal names the right
 * way.
 */
const forbiddenKeys: Record<string, string> = Object.fromEntries(
  options.flatMap((spec) =>
    spec.key !== undefined ? [] : [[
      spec.flag.replaceAll("-", "_"),
      spec.field === "configFile"
        ? "a config file cannot include another one"
        : spec.secret
        ? `secrets are never read from a config file: use --${spec.flag} or $${spec.env}`
        : `not a config-file key: use --${spec.flag}`
    ]]
  )
)

/** Where `JSON.parse` failed on `text` (` at line L, column C`) when its error says, never what the text holds. */
const whereInvalid = (text: string, error: unknown): string => {
  const message = CloudError.messageOf(error)
  if (/end of JSON input/.test(message)) return " (it ends too early)"
  const match = /at position (\d+)/.exec(message)
  if (match === null) return ""
  const before = text.slice(0, Number(match[1]))
  const line = before.split("\n").length
  return ` at line ${line}, column ${before.length - before.lastIndexOf("\n")}`
}

/** What a config file looks like when it is not even JSON, or not an object of known keys and right types. */
export const decodeFile = (path: string, text: string): Effect.Effect<Input, CloudError.CloudError> =>
  Effect.gen(function*() {
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      // V8's message may quote the file's text, which may hold a secret: only where it failed is said, and the
      // parser's error is not kept as the cause (`--log-level debug` prints causes).
      catch: (e) => CloudError.config("--config-file", `${path} is not valid JSON${whereInvalid(text, e)}`)
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

const suggest = (key: string): string => Suggest.didYouMean(key, Object.keys(Input.fields))

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

const byField = new Map(options.map((spec) => [spec.field, spec]))

/**
 * Applies defaults and the cascade, reads the environment and validates every value. Fails on the first bad
 * option with its name and the fix.
 *
 * **Details**
 *
 * First every option no other bears on, by its entry (in table order); then, here, the backend choice, the
 * defaults that follow from other options and the checks across options.
 */
export const resolve = (
  input: Input,
  cliOnly: CliOnly,
  env: Environment
): Effect.Effect<CloudConfig, CloudError.CloudError> =>
  Effect.gen(function*() {
    const givenBy = (spec: OptionSpec): unknown =>
      spec.key === undefined ? (cliOnly as Record<string, unknown>)[spec.field] : input[spec.key]
    const given = <F extends keyof Given>(field: F) => givenBy(byField.get(field)!) as Given[F]
    const flagOf = (field: keyof Given) => byField.get(field)!.flag
    const name = (field: keyof Given) => `--${flagOf(field)}`

    const resolved: Record<string, unknown> = {}
    for (const spec of options) {
      if (spec.resolve === undefined) continue
      const value = givenBy(spec) ?? (spec.env === undefined ? undefined : nonEmpty(env[spec.env]))
      resolved[spec.field] = yield* spec.resolve(value, spec.flag)
    }
    const values = resolved as Resolved
    const { localhost, macosx, namespace, os, proxy } = values

    // The backend choice.
    const sshHost = given("sshHost")
    if (sshHost !== undefined && (proxy || localhost)) {
      return yield* CloudError.config(
        name("sshHost"),
        `cannot be combined with --${proxy ? "proxy" : "localhost"}: choose one backend`
      )
    }
    const local = { _tag: "Localhost", runtime: values.agentRuntime } as const
    const backend: BackendChoice = sshHost !== undefined
      ? {
        _tag: "SshHost",
        target: yield* parseSshHost(sshHost, env.USER ?? "root"),
        ...(values.agentRuntime === "auto" ? {} : { runtime: values.agentRuntime })
      }
      : proxy
      ? { _tag: "Proxy", inner: localhost ? local : { _tag: "Gcp" } }
      : localhost
      ? local
      : { _tag: "Gcp" }
    const mode = modeOf(backend)

    // The cascade. Localhost turns everything off by default; cloud and proxy modes turn Grafana on (with cos). An
    // ssh host is the user's own machine, like localhost: nothing runs there unless asked for.
    const grafana = given("grafana") ?? ((mode === "cloud" || proxy) && os === "cos")
    const prometheus = given("prometheus") ?? (grafana || values.alertHandlers.length > 0)
    const noMaxRunDuration = given("noMaxRunDuration") ?? (proxy || os !== "cos")

    // An agent's port range must fit below 65536; a remote orchestrator serves its website on 80.
    const portsPerVm = yield* checkInt(flagOf("portsPerVm"), given("portsPerVm") ?? 50, 2, 65536 - values.vmBasePort)
    const websitePort = yield* checkInt(
      flagOf("websitePort"),
      given("websitePort") ?? (mode === "orchestrator" ? 80 : 8080),
      1,
      65535
    )
    // A snapshot without a port gets the next one after --prometheus-port.
    const prometheusSnapshots = yield* Effect.forEach(given("prometheusSnapshots") ?? [], (text, i) => {
      const match = /^(.+?)(?::(\d+))?$/.exec(text)!
      const snapshotPort = match[2] === undefined ? values.prometheusPort + i : Number(match[2])
      return validPort(snapshotPort)
        ? Effect.succeed({ path: match[1]!, port: snapshotPort })
        : Effect.fail(CloudError.config(name("prometheusSnapshots"), `"${text}": the port must be from 1 to 65535`))
    })

    const { authPassword, authUsername } = values
    if ((authUsername === undefined) !== (authPassword === undefined)) {
      return yield* CloudError.config(
        name(authUsername === undefined ? "authUsername" : "authPassword"),
        "auth mode needs both a user name and a password (CLI or $TEZT_CLOUD_AUTH_USERNAME/$TEZT_CLOUD_AUTH_PASSWORD)"
      )
    }
    if (authUsername !== undefined && macosx) {
      return yield* CloudError.config(name("authUsername"), "auth mode is not supported with --macosx")
    }

    const config: CloudConfig = {
      ...Struct.pick(values, resolvedFields),
      backend,
      mode,
      grafana,
      prometheus,
      website: given("website") ?? prometheus,
      processMonitoring: given("processMonitoring") ?? prometheus,
      portsPerVm,
      websitePort,
      prometheusSnapshots,
      prometheusExportPath: given("prometheusExportPath") ?? `/tmp/${namespace}-prometheus-snapshot`,
      dockerfileAlias: given("dockerfileAlias") ?? namespace,
      maxRunDuration: noMaxRunDuration ? undefined : values.maxRunDuration,
      checkFileConsistency: given("checkFileConsistency") ?? !macosx,
      dockerHostNetwork: given("dockerHostNetwork") ?? !macosx,
      grafanaToken: nonEmpty(env.TEZT_CLOUD_GRAFANA_TOKEN),
      scenarioSpecific: input["scenario_specific"] as CloudConfig["scenarioSpecific"]
    }
    return config
  })

/** The options' own fields that their entries resolve (not the values that only feed others, as `--agent-runtime`'s). */
const resolvedFields = options.flatMap((spec) =>
  spec.schema === undefined || spec.resolve === undefined ? [] : [spec.field as keyof Resolved & keyof OptionFields]
)

/**
 * The effective configuration as a config file would hold it (snake_case keys), secrets removed. Written to
 * `<artifacts-dir>/configuration.json`; feeding it back with `--config-file` reproduces the run.
 */
export const toJson = (config: CloudConfig): Record<string, unknown> => {
  const json: Record<string, unknown> = {}
  for (const spec of options) {
    if (spec.key === undefined) continue
    const value = spec.schema === undefined ? spec.write?.(config) : config[spec.field as keyof CloudConfig]
    json[spec.key] = spec.encode === undefined ? value : spec.encode(value as never)
  }
  json["scenario_specific"] = config.scenarioSpecific
  return Object.fromEntries(Object.entries(json).filter(([, v]) => v !== undefined))
}

/** Whether the run is in auth mode: both `--auth-username` and `--auth-password` given (resolve refuses one alone). */
export const authMode = (config: CloudConfig): boolean =>
  config.authUsername !== undefined && config.authPassword !== undefined

/** In auth mode a UI service listens on 127.0.0.1 at its usual port + this; the auth proxy takes the usual one. */
export const authPortOffset = 10000

/**
 * Refuses, before anything is created, options whose backend or subsystem this build does not have yet. Each
 * error names the option and what to use instead.
 */
export const checkAvailable = (config: CloudConfig): Effect.Effect<void, CloudError.CloudError> => {
  const missing: Array<readonly [string, string]> = []
  // Network faults: where the backend has none, with its reason.
  const noNetworkFaults = networkFaultsMissing(config)
  const tc: ReadonlyArray<readonly [boolean, string]> = [
    [config.tcDelay !== undefined, "--tc-delay"],
    [config.tcJitter !== undefined, "--tc-jitter"]
  ]
  for (const [on, flag] of tc) {
    if (on && noNetworkFaults !== undefined) missing.push([flag, `${noNetworkFaults}; drop ${flag}`])
  }
  // Domains point at the machine the run is reached through: the ssh host, or the proxy VM of a GCP --proxy run.
  if (config.dnsDomains.length > 0 && config.backend._tag !== "SshHost" && !gcpProxy(config.backend)) {
    return Effect.fail(CloudError.config(
      "--dns-domain",
      "it points a domain at the ssh host of an --ssh-host run or at the proxy VM of a --proxy run on GCP, and " +
        "this run has neither: drop --dns-domain"
    ))
  }
  const first = missing[0]
  return first === undefined
    ? Effect.void
    : Effect.fail(CloudError.notAvailable(first[0], first[1]))
}

/**
 * Why the agents of `config` cannot have network faults (`--tc-delay`, `--tc-jitter`), or `undefined` when they
 * can: process sandboxes and Docker containers on the host network have them (README "Faults and time").
 */
export const networkFaultsMissing = (config: CloudConfig): string | undefined => {
  const backend = config.backend
  switch (backend._tag) {
    case "Localhost":
      return backend.runtime === "docker" && !config.dockerHostNetwork
        ? "on Docker agents on a network of their own it needs netem, found only once they run: use " +
          "--docker-host-network"
        : undefined
    case "SshHost":
      return "the agents of an ssh host share its network interface with the ssh connection that drives them"
    case "Gcp":
      return "GCP VMs have no network faults yet (netem on their interface is not built)"
    case "Proxy":
      return "runs on the proxy have no network faults yet"
  }
}

/**
 * `--alert-handler` refused: a value that is neither `slack` nor an http(s) URL, `slack` without a channel and the
 * bot token, or handlers without the Prometheus that evaluates the alerts.
 */
const alertHandlersRefused = (config: CloudConfig): CloudError.CloudError | undefined => {
  const flag = "--alert-handler"
  if (config.alertHandlers.length > 0 && !config.prometheus) {
    return CloudError.config(
      flag,
      "alerts are evaluated by the run's Prometheus: drop --no-prometheus or --alert-handler"
    )
  }
  for (const text of config.alertHandlers) {
    const handler = Alert.parseHandler(text)
    if (handler === undefined) {
      return CloudError.config(flag, `${JSON.stringify(text)} is neither slack nor an http(s) URL (a webhook)`)
    }
    const missing = handler._tag === "Slack" ? Alert.slackMissing(slackSettings(config)) : undefined
    if (missing !== undefined) return CloudError.config(flag, `slack: ${missing}`)
  }
  return undefined
}

/** What Slack posting needs of the run, without the token itself. */
const slackSettings = (config: CloudConfig): Alert.SlackSettings => ({
  channel: config.slackChannelId,
  hasToken: config.slackBotToken !== undefined
})

/** What the run's backend is, for messages: `--localhost`, `--ssh-host`, GCP. */
const backendName = (backend: BackendChoice): string => {
  switch (backend._tag) {
    case "Localhost":
      return backend.runtime === "docker" ? "Docker agents (--localhost)" : "--localhost"
    case "SshHost":
      return "--ssh-host"
    case "Gcp":
      return "GCP VMs"
    case "Proxy":
      return backend.inner._tag === "Gcp" ? "GCP VMs (--proxy)" : "--localhost --proxy"
  }
}

/** Whether the run's orchestrator runs on a GCP VM (`--proxy` without `--localhost`). */
const gcpProxy = (backend: BackendChoice) => backend._tag === "Proxy" && backend.inner._tag === "Gcp"

/** Whether the run's agents are GCP VMs (directly or through a proxy). */
const onGcp = (backend: BackendChoice) => backend._tag === "Gcp" || gcpProxy(backend)

/**
 * Options given that would do nothing in the run's mode. Those Tezt cloud acts on there, and this build does not,
 * are refused (a `ConfigInvalid` naming the option, why and the fix); those Tezt cloud also accepts there without
 * effect are returned as warning lines, one each, for the start of the run. Maintenance jobs do not call it (their
 * options are their own: `CLOUD destroy --project-id …`).
 */
export const checkOptionsAct = (config: CloudConfig): Effect.Effect<ReadonlyArray<string>, CloudError.CloudError> => {
  const where = backendName(config.backend)
  const gcp = onGcp(config.backend)
  const refused: ReadonlyArray<readonly [boolean, string, string]> = [
    [
      config.teztaleArtifacts,
      "--teztale-artifacts",
      "this build runs no Teztale, so has no database to fetch; drop --teztale-artifacts"
    ],
    [
      config.ppxProfilingTracesArtifacts,
      "--ppx-profiling-traces-artifacts",
      "this build starts no Octez daemon with profiling on, so there are no traces to fetch (a scenario " +
      "fetches its own files with agent.fetch); drop --ppx-profiling-traces-artifacts"
    ],
    ...[[config.sshConfig, "--ssh-config"], [config.sshJump, "--ssh-jump"]].map(([value, flag]) =>
      [
        value !== undefined && config.backend._tag !== "SshHost",
        flag!,
        `it applies to --ssh-host's host, and ${where} has none: drop ${flag} (or give --ssh-host)`
      ] as const
    ),
    [
      config.sshProvision && !dockerOnSshHost(config.backend),
      "--ssh-provision",
      `it installs Docker on --ssh-host's host for --agent-runtime docker, and ${where} runs no agent there in ` +
      `Docker: drop --ssh-provision (or give --ssh-host HOST --agent-runtime docker)`
    ],
    [
      gcp && !config.autoApprove,
      "--no-auto-approve",
      "this build creates the run's VMs without asking; drop --no-auto-approve (or use --localhost to try first)"
    ]
  ]
  for (const [on, flag, why] of refused) if (on) return Effect.fail(CloudError.config(flag, why))
  const handlers = alertHandlersRefused(config)
  if (handlers !== undefined) return Effect.fail(handlers)
  const ignored: ReadonlyArray<readonly [boolean, string, string]> = [
    [config.destroy && !gcp, "--destroy", `${where} removes every agent at the end of the run anyway`],
    [
      config.projectId !== undefined && !gcp && config.dnsDomains.length === 0,
      "--project-id",
      `${where} uses no GCP project (only --dns-domain's Cloud DNS does)`
    ],
    [!config.autoApprove && !gcp, "--no-auto-approve", `${where} has no infrastructure to approve`],
    [!config.pushDocker, "--no-docker-push", "this build pushes no image (agents' images are built where they run)"],
    // Slack needs both; with one only, Tezt cloud too warns and posts nothing.
    [
      config.slackChannelId !== undefined && config.slackBotToken === undefined,
      "--slack-channel-id",
      "Slack needs the bot token too: set $TEZTCLOUD_SLACK_BOT_TOKEN"
    ],
    [
      config.slackBotToken !== undefined && config.slackChannelId === undefined,
      "--slack-bot-token ($TEZTCLOUD_SLACK_BOT_TOKEN)",
      "Slack needs a channel too: give --slack-channel-id"
    ],
    [
      config.noDns && !gcpProxy(config.backend),
      "--no-dns",
      "no domain is registered by default here (only on the proxy VM of a --proxy run on GCP)"
    ],
    [
      authMode(config) && !config.website && !config.prometheus && !config.grafana,
      "--auth-username",
      "the run serves no website nor Prometheus to put behind auth, and uploads nothing to Grafana"
    ]
  ]
  return Effect.succeed(ignored.flatMap(([on, flag, why]) => on ? [`${flag} is ignored: ${why}`] : []))
}
