/**
 * Grafana for the run (`--grafana`): provisioning files (a Prometheus datasource and the shipped
 * dashboards of `grafana/dashboards/`), and the same pushed through Grafana's HTTP API with overwrite, when the
 * Grafana at `--grafana-url` answers.
 *
 * **Details**
 *
 * tezt-cloud does not run Grafana itself (it is not packaged where tezt-cloud runs): point `--grafana-url` at
 * yours. Requests carry `Authorization: Bearer $TEZT_CLOUD_GRAFANA_TOKEN` when set (a service account token),
 * else basic auth from `--auth-username`/`--auth-password` when set. Neither ever reaches a log or a file.
 * Datasources are created (`POST /api/datasources`) or updated (`PUT /api/datasources/uid/<uid>`); dashboards go
 * to `POST /api/dashboards/db` with `overwrite: true`. The provisioning files are written in any case, so a
 * Grafana started later with `paths.provisioning` pointed at them shows the same.
 */
import { CloudError } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Http from "./internal/http.ts"

export interface Datasource {
  readonly name: string
  readonly uid: string
  /** The Prometheus it reads. */
  readonly url: string
  readonly isDefault: boolean
}

/** The repository's shipped dashboards. */
export const dashboardsDir = path.resolve(import.meta.dirname, "..", "..", "..", "grafana", "dashboards")

/** The datasource of a run's Prometheus, named `Prometheus` as in Tezt cloud. */
export const runDatasource = (prometheusUrl: string): Datasource => ({
  name: "Prometheus",
  uid: "tezt-cloud-prometheus",
  url: prometheusUrl,
  isDefault: true
})

/** `provisioning/datasources/datasource.yml` (JSON, which YAML reads). */
export const datasourcesFile = (datasources: ReadonlyArray<Datasource>): string =>
  JSON.stringify(
    {
      apiVersion: 1,
      datasources: datasources.map((d) => ({
        name: d.name,
        uid: d.uid,
        type: "prometheus",
        access: "proxy",
        url: d.url,
        isDefault: d.isDefault,
        editable: true
      }))
    },
    null,
    2
  ) + "\n"

/** `provisioning/dashboards/tezt-cloud.yml`: load every dashboard of `dir`. */
export const dashboardsFile = (dir: string): string =>
  JSON.stringify(
    {
      apiVersion: 1,
      providers: [{ name: "tezt-cloud", type: "file", allowUiUpdates: true, options: { path: dir } }]
    },
    null,
    2
  ) + "\n"

/** The dashboards of `dir`, parsed (every `*.json`, sorted by file name). */
export const dashboards = (
  dir: string = dashboardsDir
): ReadonlyArray<{ readonly file: string; readonly json: unknown }> =>
  fs.readdirSync(dir).filter((f) => f.endsWith(".json")).toSorted().map((file) => ({
    file,
    json: JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as unknown
  }))

/** Writes the provisioning tree under `dir` (datasources, dashboard provider, a copy of the dashboards). */
export const writeProvisioning = (dir: string, datasources: ReadonlyArray<Datasource>) =>
  Effect.try({
    try: () => {
      const copied = path.join(dir, "dashboards")
      fs.mkdirSync(path.join(dir, "provisioning", "datasources"), { recursive: true })
      fs.mkdirSync(path.join(dir, "provisioning", "dashboards"), { recursive: true })
      fs.cpSync(dashboardsDir, copied, { recursive: true })
      fs.writeFileSync(path.join(dir, "provisioning", "datasources", "datasource.yml"), datasourcesFile(datasources))
      fs.writeFileSync(path.join(dir, "provisioning", "dashboards", "tezt-cloud.yml"), dashboardsFile(copied))
      return path.join(dir, "provisioning")
    },
    catch: (e) =>
      CloudError.service("grafana", `cannot write its provisioning files: ${CloudError.messageOf(e)}`, { cause: e })
  })

export interface Credentials {
  readonly token?: string | undefined
  readonly basic?: { readonly user: string; readonly password: string } | undefined
}

const headers = (credentials: Credentials): Record<string, string> => ({
  "content-type": "application/json",
  ...(credentials.token !== undefined
    ? { authorization: `Bearer ${credentials.token}` }
    : credentials.basic !== undefined
    ? {
      authorization: `Basic ${
        Buffer.from(`${credentials.basic.user}:${credentials.basic.password}`).toString("base64")
      }`
    }
    : {})
})

const service = "grafana"

/** Whether the Grafana at `url` answers `/api/health` with 200. */
export const healthy = (url: string) =>
  Http.request(service, `${url}/api/health`).pipe(
    Effect.map((r) => r.status === 200),
    Effect.catch(() => Effect.succeed(false))
  )

/**
 * Creates or updates `datasources` and uploads every dashboard with overwrite, on the Grafana at `url`.
 * Returns the uploaded dashboards' titles.
 */
export const provision = Effect.fn("Grafana.provision")(function*(options: {
  readonly url: string
  readonly credentials: Credentials
  readonly datasources: ReadonlyArray<Datasource>
  readonly dashboards: ReadonlyArray<{ readonly file: string; readonly json: unknown }>
}) {
  const init = (method: string, body?: unknown) => ({
    method,
    headers: headers(options.credentials),
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  for (const d of options.datasources) {
    const body = { name: d.name, uid: d.uid, type: "prometheus", access: "proxy", url: d.url, isDefault: d.isDefault }
    const existing = yield* Http.request(service, `${options.url}/api/datasources/uid/${d.uid}`, init("GET"))
    if (existing.status === 200) {
      yield* Http.ok(service, `${options.url}/api/datasources/uid/${d.uid}`, init("PUT", body))
    } else {
      yield* Http.ok(service, `${options.url}/api/datasources`, init("POST", body))
    }
  }
  const titles: Array<string> = []
  for (const dashboard of options.dashboards) {
    const json: Record<string, unknown> = { ...(dashboard.json as Record<string, unknown>), id: null }
    yield* Http.ok(service, `${options.url}/api/dashboards/db`, init("POST", { dashboard: json, overwrite: true }))
    titles.push(String(json.title ?? dashboard.file))
  }
  return titles
})

/**
 * Writes the provisioning files under `dir` and, when the Grafana at `url` answers, provisions it (datasources
 * and the shipped dashboards). Says what it did in the log; `false` when no Grafana answered (not an error: the
 * files are there for one started later).
 */
export const setUp = Effect.fn("Grafana.setUp")(function*(options: {
  readonly dir: string
  readonly url: string
  readonly credentials: Credentials
  readonly datasources: ReadonlyArray<Datasource>
}) {
  const files = yield* writeProvisioning(options.dir, options.datasources)
  if (!(yield* healthy(options.url))) {
    yield* Effect.logWarning(
      `grafana: nothing answers at ${options.url}/api/health: dashboards not uploaded; point a Grafana at ${files} ` +
        `or give --grafana-url`
    )
    return false
  }
  const titles = yield* provision({ ...options, dashboards: dashboards() })
  yield* Effect.logInfo(`grafana: ${options.url} (dashboards: ${titles.join(", ")})`)
  return true
})
