/**
 * Where the run's services answer, from the orchestrator (the URLs the website links and the scenarios probe),
 * and a plain GET to probe them. Derived from the configuration alone, so a scenario needs nothing else.
 *
 * **Details**
 *
 * The run's services (website, Prometheus) listen on 127.0.0.1 only, in every mode: they have no authentication of
 * their own, the website shows every command and its output (`/api/run`), Prometheus runs with its admin API on,
 * and Alertmanager's API can silence alerts. Nothing needs them elsewhere: Prometheus, on this machine, scrapes the
 * website here and the agents at their own addresses (outbound connections), and agents never reach the website.
 * From another machine, tunnel
 * (`ssh -L 8080:127.0.0.1:8080 …`). A remote orchestrator (`--proxy`) keeps them on the proxy's loopback too: the
 * user's machine reaches them through its ssh connection to the proxy.
 *
 * In auth mode (`--auth-username`/`--auth-password`) the usual ports are the auth proxy's (`AuthProxy`), and each
 * service itself listens on 127.0.0.1 at its port + 10000: `website` and `prometheus` name the service itself, as
 * the orchestrator's own requests (scrapes, the charts' queries, scenarios' probes) need no credentials; `shown`
 * names what the user opens.
 */
import { CloudConfig, type CloudError } from "@tezt-cloud/core"
import type { Effect } from "effect"
import * as Http from "./internal/http.ts"

type Config = CloudConfig.CloudConfig

/** The port a UI service itself listens on for its usual `port`: that port, or port + 10000 in auth mode. */
export const servicePort = (config: Config, port: number): number =>
  CloudConfig.authMode(config) ? port + CloudConfig.authPortOffset : port

/** The address the run's services bind to: loopback, whatever the mode. */
export const listenHost = (_config: Config): string => "127.0.0.1"

/** Whether `host` is a loopback address (only those may serve Prometheus' admin API and Alertmanager's API). */
export const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/** The host the run's services are reached at from this machine. */
export const host = (_config: Config): string => "127.0.0.1"

/** The website itself, from this machine (behind the auth proxy in auth mode). */
export const website = (config: Config): string => `http://${host(config)}:${servicePort(config, config.websitePort)}`
/** Prometheus itself, from this machine (behind the auth proxy in auth mode). */
export const prometheus = (config: Config): string =>
  `http://${host(config)}:${servicePort(config, config.prometheusPort)}`
/** What the user opens for a service of usual port `port` (the auth proxy's, in auth mode). */
export const shown = (config: Config, port: number): string => `http://${host(config)}:${port}`
export const grafana = (config: Config): string => config.grafanaUrl.replace(/\/+$/, "")

/** The host an agent is reached at from this machine (process sandboxes share its network). */
export const agentHost = (agent: { readonly point: { readonly host: string } | undefined }): string =>
  agent.point?.host ?? "127.0.0.1"

/** `GET url`: the status and body; a refused connection is a `ServiceFailed` error. */
export const get = (url: string): Effect.Effect<Http.Response, CloudError.CloudError> => Http.request(url, url)
