// @ts-check
/**
 * Removes every container carrying the label `key=value` (exactly), talking to the engine's HTTP API with no
 * library: `DockerClient.removeByLabelSync` runs it in a child process and waits for it, within a time limit,
 * when the orchestrator must act synchronously (a second Ctrl+C). Prints how many containers went.
 *
 * Usage: node removeByLabel.mjs ENGINE_JSON KEY VALUE, where ENGINE_JSON is `{"socketPath"}` or `{"host","port"}`.
 */
import * as http from "node:http"

const [engineJson = "{}", key = "", value = ""] = process.argv.slice(2)
/** @type {{ socketPath?: string, host?: string, port?: number }} */
const engine = JSON.parse(engineJson)

/** @param {string} method @param {string} path @returns {Promise<{ status: number, body: string }>} */
const request = (method, path) =>
  new Promise((resolve, reject) => {
    const target = engine.socketPath === undefined ? { host: engine.host, port: engine.port } : {
      socketPath: engine.socketPath
    }
    const req = http.request({ ...target, method, path }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk) => (body += chunk))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on("error", reject)
    req.end()
  })

const filters = encodeURIComponent(JSON.stringify({ label: [`${key}=${value}`] }))
const listed = await request("GET", `/containers/json?all=1&filters=${filters}`)
/** @type {Array<{ Id: string, Labels?: Record<string, string> }>} */
const containers = listed.status === 200 ? JSON.parse(listed.body) : []
const removed = await Promise.all(
  containers.filter((c) => c.Labels?.[key] === value).map((c) =>
    request("DELETE", `/containers/${c.Id}?force=1&v=1`).then((r) => r.status < 300 || r.status === 404)
  )
)
process.stdout.write(String(removed.filter(Boolean).length))
