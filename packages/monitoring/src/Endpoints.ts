/**
 * Where the run's services answer, from the orchestrator (the URLs the website links and the scenarios probe),
 * and a plain GET to probe them. Derived from the configuration alone, so a scenario needs nothing else.
 *
 * **Details**
 *
 * The run's services (website, Prometheus) listen on 127.0.0.1 only, in every mode: they have no authentication,
 * the website shows every command and its output (`/api/run`), Prometheus runs with its admin API on, and
 * Alertmanager's API can silence alerts. Nothing needs them elsewhere: Prometheus, on this machine, scrapes the
 * website here and the agents at their own addresses (outbound connections), and agents never reach the website. From another machine, tunnel
 * (`ssh -L 8080:127.0.0.1:8080 …`). A remote orchestrator (`--proxy`) keeps them on the proxy's loopback too: the
 * user's machine reaches them through its ssh connection to the proxy.
 */
import type { CloudConfig, CloudError } from "@tezt-cloud/core"
import type { Effect } from "effect"
import * as Http from "./internal/http.ts"

type Config = CloudConfig.CloudConfig

/** The address the run's services bind to: loopback, whatever the mode. */
export const listenHost = (_config: Config): string => "127.0.0.1"

/** Whether `host` is a loopback address (only those may serve Prometheus' admin API and Alertmanager's API). */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

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
