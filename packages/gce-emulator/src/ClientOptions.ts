/**
 * Options that point the official Google Cloud clients (`@google-cloud/compute`'s `InstancesClient`, …) at an
 * emulator: its host, port and scheme, and an auth client that adds no credentials. The backend passes what
 * `TEZT_CLOUD_GCP_ENDPOINT` says (`http://127.0.0.1:P`).
 */
import { PassThroughClient } from "google-auth-library"

/** The environment variable that names an emulator's endpoint. */
export const endpointVariable = "TEZT_CLOUD_GCP_ENDPOINT"

/** Client options for `endpoint` (`http://host:port`). */
export const clientOptions = (endpoint: string) => {
  const url = new URL(endpoint)
  const protocol = url.protocol.replace(/:$/, "")
  return {
    apiEndpoint: url.hostname,
    port: Number(url.port === "" ? (protocol === "https" ? 443 : 80) : url.port),
    protocol,
    // Fallback (REST) transport: the one Compute uses anyway, and the only one an emulator of the REST API serves.
    fallback: true,
    authClient: new PassThroughClient()
  }
}

/** Client options from `TEZT_CLOUD_GCP_ENDPOINT`, or `undefined` (the real API) when it is unset. */
export const fromEnv = (env: Record<string, string | undefined> = process.env) => {
  const endpoint = env[endpointVariable]
  return endpoint === undefined || endpoint === "" ? undefined : clientOptions(endpoint)
}
