/**
 * The deployment record the ssh benchmarks write to play a live run: one `ssh-host` agent per sshd host, this
 * process as the run that keeps it, so that `./tezt-cloud agents exec` finds the run (warm, through its control
 * socket) or its agents (cold).
 */
import type { Agent } from "@tezt-cloud/core"
import * as fs from "node:fs"
import * as path from "node:path"

/** One `ssh-host` agent per host, `agent-<i>`, reached as `user` with the private key at `keyFile`. */
export const descriptors = (
  hosts: ReadonlyArray<{ readonly host: string; readonly port: number }>,
  options: { readonly namespace: string; readonly user: string; readonly keyFile: string }
): ReadonlyArray<Agent.Descriptor> =>
  hosts.map((h, i) => ({
    backend: "ssh-host",
    agent: `agent-${i}`,
    user: options.user,
    host: h.host,
    port: h.port,
    key: options.keyFile,
    home: "/tmp",
    marker: `${options.namespace}/agent-${i}`,
    namespace: options.namespace,
    binariesPath: "/tmp/tezt-runners",
    portStart: 30000,
    checkFileConsistency: 1
  }))

/** Writes `<stateDir>/<namespace>/deployment.json` listing `agents`, this process as its run. */
export const write = (stateDir: string, namespace: string, agents: ReadonlyArray<Agent.Descriptor>) => {
  const dir = path.join(stateDir, namespace)
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(path.join(dir, "deployment.json"), JSON.stringify({ namespace, pid: process.pid, agents }))
}
