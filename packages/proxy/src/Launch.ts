/**
 * How the orchestrator is started on the proxy: its arguments, its environment and its secrets, from the run the
 * user asked for. Pure functions of the configuration, so that what reaches the proxy's command line is exactly
 * what is tested.
 *
 * **Details**
 *
 * The arguments are the user's options (command line over `--config-file`, both already merged) written back as
 * flags, as Tezt cloud rewrites them for its proxy: secrets and local paths dropped (`--ssh-private-key`,
 * `--auth-username`, `--auth-password`, `--slack-bot-token`, `--config-file`, `--artifacts-dir`), then the
 * inner backend's mode (`--localhost`; on GCP, the project when the user's options did not name it) and
 * `--tezt-cloud <ns>` appended, plus our `--artifacts-dir` on the proxy and `--json` (the server logs events).
 * `--proxy` stays: on the proxy it is the remote orchestrator's mode, whose defaults (Grafana, Prometheus, the
 * website…) are the ones the user's run resolved. The secrets travel in a 0600 file the orchestrator reads itself
 * (`$TEZT_CLOUD_SECRETS_FILE`); the environment says only where things are (and, on GCP, the API's endpoint and
 * zone).
 */
import { CloudConfig, CloudError } from "@tezt-cloud/core"
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as Bundle from "./Bundle.ts"
import * as Protocol from "./ProxyProtocol.ts"

/** Config-file keys that never reach the proxy's command line (the others are secrets without a key). */
const dropped: ReadonlySet<string> = new Set(["tezt_cloud", "localhost", "artifacts_dir", "auth_username"])

/** The flags of `input` (config-file keys), as a command line gives them; keys without a flag are left out. */
export const flags = (input: CloudConfig.Input): Array<string> =>
  CloudConfig.options.flatMap((spec): Array<string> => {
    if (spec.key === undefined || spec.secret === true || dropped.has(spec.key)) return []
    const value = input[spec.key]
    if (value === undefined) return []
    switch (spec.kind) {
      case "flag":
        if (value === true) return [`--${spec.flag}`]
        return spec.negation === null ? [] : [`--${spec.negation ?? `no-${spec.flag}`}`]
      case "int":
      case "string":
        return [`--${spec.flag}`, String(value)]
      case "strings":
        return (value as ReadonlyArray<string>).flatMap((v) => [`--${spec.flag}`, v])
    }
  })

/** What of `input` only a config file can carry (`scenario_specific`): shipped as one, when there is any. */
export const fileOnly = (input: CloudConfig.Input): Record<string, unknown> =>
  Object.fromEntries(
    Object.entries(input).filter(([key, value]) =>
      value !== undefined && !dropped.has(key) && !CloudConfig.options.some((spec) => spec.key === key)
    )
  )

export interface Run {
  readonly group: string
  readonly tags: ReadonlyArray<string>
  /** The run's options, config-file keys (see `CloudConfig.Input`). */
  readonly input: CloudConfig.Input
  readonly namespace: string
}

/**
 * The orchestrator's arguments on the proxy (after the CLI's entry point), `mode` those of the inner backend.
 * Prometheus' snapshot goes into the artifacts dir unless the user said where: it comes back with them.
 */
export const args = (
  run: Run,
  files: Protocol.Layout,
  configFile: string | undefined,
  mode: ReadonlyArray<string> = ["--localhost"]
): Array<string> => [
  run.group,
  ...run.tags,
  ...flags(run.input),
  ...(configFile === undefined ? [] : ["--config-file", configFile]),
  ...(run.input.prometheus_export_path === undefined
    ? ["--prometheus-export-path", `${files.artifacts}/prometheus-snapshot`]
    : []),
  ...mode,
  "--tezt-cloud",
  run.namespace,
  "--artifacts-dir",
  files.artifacts,
  "--json"
]

/** The secrets of the run, by the environment variables the configuration reads them from. */
export const secrets = (
  config: CloudConfig.CloudConfig,
  extra: Readonly<Record<string, string>> = {}
): Record<string, string> => {
  const all: Record<string, string | undefined> = {
    ...extra,
    TEZT_CLOUD_AUTH_USERNAME: config.authUsername,
    TEZT_CLOUD_AUTH_PASSWORD: config.authPassword,
    TEZT_CLOUD_GRAFANA_TOKEN: config.grafanaToken,
    TEZTCLOUD_SLACK_BOT_TOKEN: config.slackBotToken
  }
  return Object.fromEntries(Object.entries(all).flatMap(([k, v]) => (v === undefined ? [] : [[k, v]])))
}

/** The orchestrator's whole environment on the proxy: no secret, only where things are. */
export const environment = (options: {
  readonly home: string
  readonly namespace: string
  readonly files: Protocol.Layout
  readonly scenarios: ReadonlyArray<string>
  /** What the inner backend needs there (never a secret). */
  readonly extra?: Readonly<Record<string, string>> | undefined
}): Record<string, string> => ({
  ...options.extra,
  PATH: `${options.files.workspace}/${Bundle.toolsDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
  HOME: options.home,
  LANG: "C.UTF-8",
  TEZT_CLOUD_STATE_DIR: options.files.state,
  ...(options.scenarios.length === 0 ? {} : { TEZT_CLOUD_SCENARIOS: options.scenarios.join(":") }),
  [Protocol.onProxyVariable]: options.namespace,
  [Protocol.secretsVariable]: options.files.secrets
})

const SecretsFile = Schema.fromJsonString(Schema.Record(Schema.String, Schema.String))

/**
 * The environment a run resolves its configuration from: `env`, plus the secrets of the 0600 file
 * `$TEZT_CLOUD_SECRETS_FILE` names (on the proxy). Without the variable, `env` itself.
 */
export const withSecrets = (
  env: Readonly<Record<string, string | undefined>>
): Effect.Effect<Readonly<Record<string, string | undefined>>, CloudError.CloudError> => {
  const file = env[Protocol.secretsVariable]
  if (file === undefined) return Effect.succeed(env)
  return Effect.try({
    try: () => {
      const mode = fs.statSync(file).mode & 0o777
      if ((mode & 0o077) !== 0) {
        throw new Error(`its mode is ${mode.toString(8)}: it must be readable by its owner only`)
      }
      return { ...env, ...Schema.decodeUnknownSync(SecretsFile)(fs.readFileSync(file, "utf8")) }
    },
    catch: (e) => CloudError.config(`$${Protocol.secretsVariable}`, `${file}: ${CloudError.messageOf(e)}`)
  })
}
