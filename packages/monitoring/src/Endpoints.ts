/**
 * Where the run's services answer, from the orchestrator (the URLs the website links and the scenarios probe),
 * and a plain GET to probe them. Derived from the configuration alone, so a scenario needs nothing else.
 *
 * **Details**
 *
 * With `--localhost` every service listens on 127.0.0.1 only. The remote modes, once they exist, listen on every
 * interface and are reached through the proxy's address.
 */
import type { CloudConfig, CloudError } from "@tezt-cloud/core"
import type { Effect } from "effect"
import * as Http from "./internal/http.ts"

type Config = CloudConfig.CloudConfig

/** The address the run's services bind to. */
export const listenHost = (config: Config): string => config.mode === "localhost" ? "127.0.0.1" : "0.0.0.0"

/** The host the run's services are reached at from this machine. */
export const host = (_config: Config): string => "127.0.0.1"

export const website = (config: Config): string => `http://${host(config)}:${config.websitePort}`
export const prometheus = (config: Config): string => `http://${host(config)}:${config.prometheusPort}`
export const grafana = (config: Config): string => config.grafanaUrl.replace(/\/+$/, "")

/** The host an agent is reached at from this machine (process sandboxes share its network). */
export const agentHost = (agent: { readonly point: { readonly host: string } | undefined }): string =>
  agent.point?.host ?? "127.0.0.1"

/** `GET url`: the status and body; a refused connection is a `ServiceFailed` error. */
export const get = (url: string): Effect.Effect<Http.Response, CloudError.CloudError> => Http.request(url, url)
