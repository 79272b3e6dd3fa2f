/**
 * What a run of a namespace may leave behind, counted once it is over: processes carrying the namespace's marker
 * (from /proc, which also shows the processes of the ssh test hosts and of the containers: they all run on this
 * machine's kernel), the namespace's live-run files in its state dir, the run's directory on the ssh host,
 * listeners in the run's port range (on the run's own addresses, for VMs that share a port range), ledger records
 * never released, Docker containers, networks and image tags with the namespace's label, network namespaces named
 * after it, and what a cloud backend holds of it (VMs, firewall rules and their hosts).
 */
import { DockerAgents, DockerClient } from "@tezt-cloud/docker"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { findMarked } from "../../packages/localhost/src/internal/processTree.ts"
import { outstanding } from "../fixtures/Cli.ts"

export interface Leftovers {
  readonly processes: ReadonlyArray<number>
  /** In the namespace's state dir: sandboxes, control socket, deployment record, lock, a proxy's records. */
  readonly files: ReadonlyArray<string>
  /** The run's directory on the ssh host. */
  readonly remote: ReadonlyArray<string>
  /** Ports of the run's range something listens on. */
  readonly ports: ReadonlyArray<number>
  readonly ledger: ReadonlyArray<string>
  readonly docker: ReadonlyArray<string>
  readonly netns: ReadonlyArray<string>
  /** The namespace's VMs, firewall rules and the hosts behind them, as the cloud (an emulator) lists them. */
  readonly cloud: ReadonlyArray<string>
}

/** How many things are left, all kinds together. */
export const count = (left: Leftovers) =>
  left.processes.length + left.files.length + left.remote.length + left.ports.length + left.ledger.length +
  left.docker.length + left.netns.length + left.cloud.length

/** The kinds left, e.g. `processes 3: 812 813 814; ledger 1: sandbox:agent-000`. */
export const describe = (left: Leftovers) =>
  Object.entries(left).filter(([, v]) => (v as ReadonlyArray<unknown>).length > 0).map(([k, v]) =>
    `${k} ${(v as ReadonlyArray<unknown>).length}: ${(v as ReadonlyArray<unknown>).join(" ")}`
  ).join("; ")

/** An IPv4 address as /proc/net/tcp prints it (`0100007F` is 127.0.0.1), dotted. */
const ipv4 = (hex: string) =>
  hex.length === 8 ? [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join(".") : undefined

/**
 * Ports in [from, to) that a socket of this network namespace listens on (TCP, IPv4 and IPv6); with `addresses`,
 * only sockets bound to one of them.
 */
export const listeningPorts = (from: number, to: number, addresses?: ReadonlyArray<string>): Array<number> =>
  ["tcp", "tcp6"].flatMap((table) => {
    let text = ""
    try {
      text = fs.readFileSync(`/proc/net/${table}`, "latin1")
    } catch {
      return []
    }
    return text.trim().split("\n").slice(1).flatMap((line) => {
      const fields = line.trim().split(/\s+/)
      const [address, hexPort] = fields[1]!.split(":")
      const port = parseInt(hexPort!, 16)
      const ours = addresses === undefined || addresses.includes(ipv4(address!) ?? "")
      // st 0A is LISTEN.
      return fields[3] === "0A" && port >= from && port < to && ours ? [port] : []
    })
  })

/** The namespace's live-run files in its state dir: what a run removes when it ends. */
const stateFiles = (stateDir: string, namespace: string) => {
  const dir = path.join(stateDir, namespace)
  if (!fs.existsSync(dir)) return []
  const agents = path.join(dir, "agents")
  return [
    ...(fs.existsSync(agents) ? fs.readdirSync(agents).map((a) => `agents/${a}`) : []),
    ...fs.readdirSync(dir).filter((f) =>
      ["control.sock", "deployment.json", "proxy.json", "proxy.offset"].includes(f) || /lock/.test(f)
    )
  ]
}

const netns = (namespace: string) => {
  try {
    return fs.readdirSync("/run/netns").filter((n) => n.includes(namespace))
  } catch {
    return []
  }
}

/** What the namespace has on the test engine, by label. */
const docker = (namespace: string, socket: string) =>
  Effect.runPromise(
    DockerAgents.leftovers(namespace).pipe(
      Effect.map((l) => [...l.containers, ...l.networks, ...l.images]),
      Effect.provide(DockerClient.layer({ socketPath: socket }))
    )
  )

export interface Where {
  readonly stateDir: string
  readonly namespace: string
  /** The run's port range, [from, to). */
  readonly ports: readonly [number, number]
  /** The run's directory on the ssh host, if it ran there (the host is this machine). */
  readonly remoteDir?: string | undefined
  /** The Docker engine's socket, if it ran on Docker. */
  readonly dockerSocket?: string | undefined
  /**
   * The addresses whose listeners in `ports` are the run's (all when undefined): VMs share a port range, each on
   * an address of its own. Asked when counting (an address may have gone to another run's VM since).
   */
  readonly addresses?: (() => Promise<ReadonlyArray<string>>) | undefined
  /** What the cloud still holds of the namespace, if it ran there. */
  readonly cloud?: (() => Promise<ReadonlyArray<string>>) | undefined
}

/**
 * Counts what is left of a run that has exited. Processes being killed get a few seconds to be gone (a teardown's
 * SIGKILL is asynchronous), listeners too; anything still there then is left.
 */
export const collect = async (where: Where): Promise<Leftovers> => {
  const deadline = Date.now() + 5000
  const processes = () => findMarked("TEZT_CLOUD_NS", where.namespace)
  const addresses = await where.addresses?.()
  const ports = () => listeningPorts(where.ports[0], where.ports[1], addresses)
  while (Date.now() < deadline && processes().length + ports().length > 0) {
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    processes: processes(),
    files: stateFiles(where.stateDir, where.namespace),
    remote: where.remoteDir !== undefined && fs.existsSync(where.remoteDir) ? [where.remoteDir] : [],
    ports: ports(),
    ledger: outstanding(where.stateDir, where.namespace),
    docker: where.dockerSocket === undefined ? [] : await docker(where.namespace, where.dockerSocket),
    netns: netns(where.namespace),
    cloud: where.cloud === undefined ? [] : await where.cloud()
  }
}
