/**
 * What goes wrong when talking to Google Cloud, each as a reason whose message is one line naming the fix:
 * missing credentials or project, an unknown project, the Compute API disabled, a quota exceeded, a zone out of
 * capacity, an image not found. `classify` turns what the official client throws (or what an Operation reports)
 * into one of them; `toCloud` gives the `CloudError` the CLI prints.
 */
import { CloudError } from "@tezt-cloud/core"
import { Schema } from "effect"

/** No Application Default Credentials here (and no emulator endpoint). */
export class NoCredentials extends Schema.TaggedError<NoCredentials>()("NoCredentials", {}) {}

/** No `--project-id`, and no project in the environment or gcloud's configuration. */
export class NoProject extends Schema.TaggedError<NoProject>()("NoProject", {}) {}

/** The project does not exist, or this account cannot see it. */
export class UnknownProject extends Schema.TaggedError<UnknownProject>()("UnknownProject", {
  project: Schema.String
}) {}

/** The Compute Engine API is not enabled in the project. */
export class ApiDisabled extends Schema.TaggedError<ApiDisabled>()("ApiDisabled", { project: Schema.String }) {}

/** A quota of the project (CPUs, addresses, …) is exceeded. */
export class QuotaExceeded extends Schema.TaggedError<QuotaExceeded>()("QuotaExceeded", {
  project: Schema.String,
  detail: Schema.String
}) {}

/** The zone has no capacity left for the machine type. */
export class ZoneCapacity extends Schema.TaggedError<ZoneCapacity>()("ZoneCapacity", {
  zone: Schema.String,
  detail: Schema.String
}) {}

/** The boot image does not exist (or cannot be read). */
export class ImageNotFound extends Schema.TaggedError<ImageNotFound>()("ImageNotFound", {
  image: Schema.String
}) {}

/** A setting of ours (an environment variable) has a value we cannot use. */
export class BadSetting extends Schema.TaggedError<BadSetting>()("BadSetting", {
  setting: Schema.String,
  detail: Schema.String
}) {}

/** Any other failure of a call, as the API words it. */
export class CallFailed extends Schema.TaggedError<CallFailed>()("CallFailed", {
  call: Schema.String,
  code: Schema.String,
  detail: Schema.String
}) {}

export const Reason = Schema.Union([
  NoCredentials,
  NoProject,
  UnknownProject,
  ApiDisabled,
  QuotaExceeded,
  ZoneCapacity,
  ImageNotFound,
  BadSetting,
  CallFailed
])
export type Reason = typeof Reason.Type

export class GcpError extends Schema.TaggedError<GcpError>()("GcpError", { reason: Reason }) {
  override get message(): string {
    return describe(this.reason)
  }
}

/** The one-line text of a reason, with its fix. */
export const describe = (reason: Reason): string => {
  switch (reason._tag) {
    case "NoCredentials":
      return "no Google Cloud credentials here: run 'gcloud auth application-default login' (or set " +
        "GOOGLE_APPLICATION_CREDENTIALS to a key file), or set TEZT_CLOUD_GCP_ENDPOINT to an emulator " +
        "(npm run gcp-emulator)"
    case "NoProject":
      return "no GCP project: give --project-id PROJECT, or set a default one with 'gcloud config set project PROJECT'"
    case "UnknownProject":
      return `project ${reason.project} does not exist or this account cannot use it: check --project-id ` +
        `('gcloud projects list') and the account's roles`
    case "ApiDisabled":
      return `the Compute Engine API is disabled in project ${reason.project}: enable it with ` +
        `'gcloud services enable compute.googleapis.com --project ${reason.project}'`
    case "QuotaExceeded":
      return `quota exceeded in project ${reason.project} (${reason.detail}): ask for more quota ` +
        `('gcloud compute regions describe REGION' shows it), or use a smaller --machine-type or fewer agents`
    case "ZoneCapacity":
      return `zone ${reason.zone} has no capacity for this machine now (${reason.detail}): try another zone ` +
        `(TEZT_CLOUD_GCP_ZONE) or another --machine-type`
    case "ImageNotFound":
      return `image ${reason.image} not found: pick another --os, or set TEZT_CLOUD_GCP_IMAGE to an image that ` +
        `exists ('gcloud compute images list')`
    case "BadSetting":
      return `${reason.setting}: ${reason.detail}`
    case "CallFailed":
      return `${reason.call} failed (${reason.code}): ${reason.detail}`
  }
}

export const make = (reason: Reason) => new GcpError({ reason })

/** What the official client throws (a `GoogleError`) or an Operation's `error`, as far as we read it. */
interface Raw {
  readonly code?: unknown
  readonly message?: unknown
  readonly reason?: unknown
  readonly errors?: unknown
}

/** A message on one line, without the client's list of every earlier attempt, and not endless. */
const one = (s: string) => {
  const line = s.replace(/\s*:\s*Previous errors\s*:[\s\S]*$/, "").replaceAll(/\s+/g, " ").trim()
  return line.length > 400 ? `${line.slice(0, 400)}…` : line
}

/** gRPC status names of the client's numeric codes. */
const statusNames: Record<number, string> = {
  1: "CANCELLED",
  2: "UNKNOWN",
  3: "INVALID_ARGUMENT",
  4: "DEADLINE_EXCEEDED",
  5: "NOT_FOUND",
  6: "ALREADY_EXISTS",
  7: "PERMISSION_DENIED",
  8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION",
  10: "ABORTED",
  13: "INTERNAL",
  14: "UNAVAILABLE",
  16: "UNAUTHENTICATED"
}

/** Whether a thrown client error is NOT_FOUND (code 5, or HTTP 404). */
export const isNotFound = (e: unknown): boolean => {
  const raw = e as Raw & { readonly httpStatusCode?: unknown }
  return raw?.code === 5 || raw?.code === 404 || raw?.httpStatusCode === 404
}

/** Whether a thrown client error is a transient one a call may be sent again for (with the same requestId). */
export const isTransient = (e: unknown): boolean => {
  const code = (e as Raw)?.code
  return code === 14 || code === 4 || code === 13 || code === 10
}

/**
 * The reason of a failure of `call` in `project`/`zone`: a client error (thrown) or an Operation's `error`
 * (`{ errors: [{ code, message }] }`). `image` is the boot image the call used, if any.
 */
export const classify = (
  call: string,
  raw: unknown,
  context: { readonly project: string; readonly zone?: string | undefined; readonly image?: string | undefined }
): GcpError => {
  const r = (raw ?? {}) as Raw
  const errors = Array.isArray(r.errors) ? (r.errors as ReadonlyArray<Raw>) : []
  const codes = [
    ...(typeof r.code === "string" ? [r.code] : []),
    ...(typeof r.reason === "string" ? [r.reason] : []),
    ...errors.flatMap((e) => [e.code, e.reason].filter((c): c is string => typeof c === "string"))
  ]
  // A network failure (`fetch failed`) says why in its cause (ECONNREFUSED…).
  const cause = raw instanceof Error && raw.cause instanceof Error ? `: ${raw.cause.message}` : ""
  const messages = [
    ...(typeof r.message === "string" ? [`${r.message}${cause}`] : []),
    ...errors.flatMap((e) => typeof e.message === "string" ? [e.message] : [])
  ].map(one)
  const text = messages.join("; ")
  const has = (...names: ReadonlyArray<string>) => codes.some((c) => names.includes(c))
  const says = (pattern: RegExp) => messages.some((m) => pattern.test(m))
  const { project } = context
  if (says(/Could not load the default credentials|Could not refresh access token|invalid_grant/i)) {
    return make(new NoCredentials())
  }
  if (says(/Unable to detect a Project Id/i)) return make(new NoProject())
  if (has("SERVICE_DISABLED", "accessNotConfigured") || says(/API has not been used in project|API .* is disabled/i)) {
    return make(new ApiDisabled({ project }))
  }
  if (has("QUOTA_EXCEEDED", "quotaExceeded", "RATE_LIMIT_EXCEEDED") || says(/Quota '.*' exceeded/)) {
    return make(new QuotaExceeded({ project, detail: text }))
  }
  if (
    has("ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "resourcePoolExhausted") ||
    says(/does not have enough resources available/)
  ) {
    return make(new ZoneCapacity({ zone: context.zone ?? "?", detail: text }))
  }
  if (context.image !== undefined && says(/resource '.*images\/.*' was not found/i)) {
    return make(new ImageNotFound({ image: context.image }))
  }
  if (
    says(
      new RegExp(`resource 'projects/${project}' was not found|Project '?${project}'? (?:not found|does not exist)`)
    ) ||
    (r.code === 7 && says(/Permission denied on resource project|Required '.*' permission for 'projects\//))
  ) {
    return make(new UnknownProject({ project }))
  }
  const code = typeof r.code === "number" ? statusNames[r.code] ?? String(r.code) : codes[0] ?? "no answer"
  return make(new CallFailed({ call, code, detail: text === "" ? String(raw) : text }))
}

/** The error the CLI prints: the option a user fixes when there is one, else a deployment failure of `agent`. */
export const toCloud = (agent: string) => (e: GcpError): CloudError.CloudError =>
  asOption(e) ?? CloudError.deploy(agent, e.message)

/** The error a `CLOUD` job `job` prints: the option a user fixes when there is one, else the job's failure. */
export const toCloudJob = (job: string) => (e: GcpError): CloudError.CloudError =>
  asOption(e) ?? CloudError.service(`GCP (${job})`, e.message)

const asOption = (e: GcpError): CloudError.CloudError | undefined => {
  switch (e.reason._tag) {
    case "NoProject":
    case "UnknownProject":
      return CloudError.config("--project-id", e.message)
    case "NoCredentials":
      return CloudError.config("GCP credentials", e.message)
    case "BadSetting":
      return CloudError.config(e.reason.setting, e.reason.detail)
    default:
      return undefined
  }
}
