/**
 * Where the GCP backend works, decided before anything is loaded or sent: the API endpoint (Google's, or an
 * emulator's from `TEZT_CLOUD_GCP_ENDPOINT`), the project, the zone and its region. Only files and the
 * environment are read here, never the network, so a missing project or missing credentials is one clear line
 * before anything is created.
 *
 * **Details**
 *
 * - Project: `--project-id`, else `$CLOUDSDK_CORE_PROJECT`, `$GOOGLE_CLOUD_PROJECT`, `$GCLOUD_PROJECT`, else the
 *   `project` of gcloud's active configuration (what `gcloud config get-value project` prints), else the
 *   project of the Application Default Credentials file.
 * - Credentials (Google's API only): `$GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
 *   `application_default_credentials.json`, or running on a GCE VM (its metadata server); none of them is an error.
 *   A `--proxy` run's orchestrator gets the user's credentials file whole in `$TEZT_CLOUD_GCP_CREDENTIALS`, read
 *   from its 0600 secrets file (the VMs this backend makes have no service account of their own).
 * - Zone: `$TEZT_CLOUD_GCP_ZONE`, else `europe-west1-b` (Tezt cloud's); the region is the zone without its last
 *   letter.
 * - `$TEZT_CLOUD_GCP_IMAGE` replaces the boot image `--os` picks.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as GcpError from "./GcpError.ts"

/** The environment variable that points every client at an emulator (`http://127.0.0.1:P`). */
export const endpointVariable = "TEZT_CLOUD_GCP_ENDPOINT"
export const zoneVariable = "TEZT_CLOUD_GCP_ZONE"
export const imageVariable = "TEZT_CLOUD_GCP_IMAGE"
/** The content of a credentials file, for a run on a proxy (a secret: only ever in its 0600 secrets file). */
export const credentialsVariable = "TEZT_CLOUD_GCP_CREDENTIALS"

/** Tezt cloud's zone. */
export const defaultZone = "europe-west1-b"

export interface Target {
  /** An emulator's `http://host:port`; `undefined`: Google's API with the Application Default Credentials. */
  readonly endpoint: string | undefined
  readonly project: string
  readonly zone: string
  readonly region: string
  /** The boot image instead of the one `--os` picks. */
  readonly image: string | undefined
  /** Credentials given whole (`$TEZT_CLOUD_GCP_CREDENTIALS`), instead of the Application Default Credentials. */
  readonly credentials?: Readonly<Record<string, unknown>> | undefined
}

type Env = Readonly<Record<string, string | undefined>>

const nonEmpty = (s: string | undefined) => s === undefined || s.trim() === "" ? undefined : s.trim()

const readText = (file: string): string | undefined => {
  try {
    return fs.readFileSync(file, "utf8")
  } catch {
    return undefined
  }
}

/** gcloud's configuration directory. */
const gcloudDir = (env: Env) =>
  nonEmpty(env.CLOUDSDK_CONFIG) ?? path.join(env.HOME ?? os.homedir(), ".config", "gcloud")

/** The `project` of gcloud's active configuration (an INI file), if any. */
const gcloudProject = (env: Env): string | undefined => {
  const dir = gcloudDir(env)
  const active = nonEmpty(env.CLOUDSDK_ACTIVE_CONFIG_NAME) ?? nonEmpty(readText(path.join(dir, "active_config"))) ??
    "default"
  const ini = readText(path.join(dir, "configurations", `config_${active}`))
  if (ini === undefined) return undefined
  let section = ""
  for (const line of ini.split("\n")) {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(line)
    if (header) section = header[1]!.trim()
    const entry = /^\s*project\s*=\s*(\S+)\s*$/.exec(line)
    if (entry && section === "core") return entry[1]
  }
  return undefined
}

/** The Application Default Credentials file, if there is one. */
export const credentialsFile = (env: Env): string | undefined => {
  const explicit = nonEmpty(env.GOOGLE_APPLICATION_CREDENTIALS)
  if (explicit !== undefined) return fs.existsSync(explicit) ? explicit : undefined
  const file = path.join(gcloudDir(env), "application_default_credentials.json")
  return fs.existsSync(file) ? file : undefined
}

/** The project the credentials file names (a service account's, or the quota project). */
const credentialsProject = (text: string | undefined): string | undefined => {
  if (text === undefined) return undefined
  try {
    const json = JSON.parse(text) as { project_id?: string; quota_project_id?: string }
    return nonEmpty(json.project_id) ?? nonEmpty(json.quota_project_id)
  } catch {
    return undefined
  }
}

/** Whether this machine is a GCE VM (whose metadata server gives credentials), read from its DMI product name. */
export const onGce = () => /Google/.test(readText("/sys/class/dmi/id/product_name") ?? "")

const zonePattern = /^([a-z]+-[a-z]+[0-9]+)-[a-z]$/

const badEndpoint = (value: string) =>
  GcpError.make(
    new GcpError.BadSetting({
      setting: `$${endpointVariable}`,
      detail: `"${value}" is not an http(s)://host:port URL such as http://127.0.0.1:8086`
    })
  )

/** The target of a run with `--project-id` `projectId` in environment `env`. */
export const resolve = (
  projectId: string | undefined,
  env: Env = process.env
): Effect.Effect<Target, GcpError.GcpError> =>
  Effect.gen(function*() {
    const endpoint = nonEmpty(env[endpointVariable])
    if (endpoint !== undefined && !/^https?:\/\/[^\s/?#]+\/?$/.test(endpoint)) return yield* badEndpoint(endpoint)
    const given = endpoint === undefined ? nonEmpty(env[credentialsVariable]) : undefined
    const inline = given === undefined ? undefined : yield* Effect.try({
      try: () => JSON.parse(given) as Record<string, unknown>,
      catch: () =>
        GcpError.make(
          new GcpError.BadSetting({ setting: `$${credentialsVariable}`, detail: "it is not a credentials file's JSON" })
        )
    })
    const file = endpoint === undefined && inline === undefined ? credentialsFile(env) : undefined
    if (endpoint === undefined && inline === undefined && file === undefined && !onGce()) {
      return yield* GcpError.make(new GcpError.NoCredentials())
    }
    const project = nonEmpty(projectId) ?? nonEmpty(env.CLOUDSDK_CORE_PROJECT) ?? nonEmpty(env.GOOGLE_CLOUD_PROJECT) ??
      nonEmpty(env.GCLOUD_PROJECT) ?? gcloudProject(env) ??
      credentialsProject(given ?? (file === undefined ? undefined : readText(file)))
    if (project === undefined) return yield* GcpError.make(new GcpError.NoProject())
    if (!/^[a-z](?:[-a-z0-9.:]{0,98}[a-z0-9])?$/.test(project)) {
      return yield* GcpError.make(
        new GcpError.BadSetting({
          setting: "--project-id",
          detail: `"${project}" is not a project id (lowercase letters, digits and hyphens, e.g. my-project-123)`
        })
      )
    }
    const zone = nonEmpty(env[zoneVariable]) ?? defaultZone
    const region = zonePattern.exec(zone)?.[1]
    if (region === undefined) {
      return yield* GcpError.make(
        new GcpError.BadSetting({
          setting: `$${zoneVariable}`,
          detail: `"${zone}" is not a zone such as ${defaultZone} ('gcloud compute zones list')`
        })
      )
    }
    return {
      endpoint: endpoint?.replace(/\/$/, ""),
      project,
      zone,
      region,
      image: nonEmpty(env[imageVariable]),
      ...(inline === undefined ? {} : { credentials: inline })
    } satisfies Target
  })

/** `emulator http://…` or `project P`, for messages. */
export const label = (target: Target) =>
  target.endpoint === undefined
    ? `project ${target.project}, zone ${target.zone}`
    : `project ${target.project}, zone ${target.zone}, emulator ${target.endpoint}`
