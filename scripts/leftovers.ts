/**
 * What the test suite leaves behind: `npm test` takes a snapshot of the machine's shared places before the lanes
 * start and after they end, and reports anything new. The places: the temporary directory, the tool's state
 * directory, the test Docker engine's containers, networks and volumes, network namespaces, and the
 * processes of agents (their `TEZT_CLOUD_NS` marker) and of the programs tests start (sshd, Prometheus, …).
 * Anything that appeared and is still there once the run is over was left by a test, on a machine where nothing
 * else runs, as in CI.
 */
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export type Snapshot = Readonly<Record<string, ReadonlyArray<string>>>

/** The test Docker engine (test/fixtures/DockerEngine.ts). */
const dockerSocket = "/run/tezt-cloud-docker.sock"

const lines = (command: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = process.env) => {
  try {
    return child.execFileSync(command, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      env,
      timeout: 20_000
    })
      .split("\n").map((l) => l.trim()).filter((l) => l !== "")
  } catch {
    return []
  }
}

const entries = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : [])

/**
 * The temporary directory's entries, where a user's run directory on an ssh host of this machine
 * (`tezt-cloud-<uid>`, kept for that user's next runs, as tmux keeps `tmux-<uid>`) counts by what is inside: the
 * namespaces' directories, which a run must remove.
 */
const tmpEntries = (dir: string) =>
  entries(dir).flatMap((name) =>
    /^tezt-cloud-\d+$/.test(name)
      ? entries(path.join(dir, name)).map((inner) => `${name}/${inner}`)
      : [name]
  )

/** Programs the tests start that must not outlive them. */
const testPrograms =
  /^(\S*\/)?(sshd|prometheus|prometheus-alertmanager|alertmanager|netdata|chrom\w*|perl|ssh-agent)\b|tezt-cloud/

/** The test Docker engine: a service the first test that needs it starts, and that outlives the run on purpose. */
const services = /^(\S*\/)?(dockerd|containerd|containerd-shim\S*)\s/

/**
 * Pids and command lines of the processes that carry an agent's namespace marker (`TEZT_CLOUD_NS`) or run one of
 * the programs tests start, this process and its ancestors apart.
 */
const testProcesses = () => {
  const ours = new Set([String(process.pid), String(process.ppid)])
  return entries("/proc").filter((pid) => /^\d+$/.test(pid) && !ours.has(pid)).flatMap((pid) => {
    try {
      const command = fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\0", " ").trim()
      const environ = fs.readFileSync(`/proc/${pid}/environ`, "latin1")
      const marked = environ.split("\0").some((v) => v.startsWith("TEZT_CLOUD_NS="))
      return (marked || testPrograms.test(command)) && !services.test(command) ? [`${pid} ${command}`] : []
    } catch {
      return []
    }
  })
}

const docker = (what: "ps" | "network ls" | "volume ls") => {
  if (!fs.existsSync(dockerSocket)) return []
  const format = what === "ps" ? "{{.Names}}" : "{{.Name}}"
  return lines("docker", [...what.split(" "), ...(what === "ps" ? ["-a"] : []), "--format", format], {
    ...process.env,
    DOCKER_HOST: `unix://${dockerSocket}`
  })
}

/** The machine's shared places, as lists of names. `tmp` and `state` are where temporary and state files go. */
export const snapshot = (
  tmp: string = os.tmpdir(),
  state: string = process.env.TEZT_CLOUD_STATE_DIR ?? path.join(os.homedir(), ".local/state/tezt-cloud")
): Snapshot => ({
  [tmp]: tmpEntries(tmp),
  [state]: entries(state),
  "docker containers": docker("ps"),
  "docker networks": docker("network ls"),
  "docker volumes": docker("volume ls"),
  "network namespaces": lines("ip", ["netns", "list"]).map((l) => l.split(" ")[0]!),
  processes: testProcesses()
})

/** What `after` has that `before` had not, by place. Processes are compared by pid and command line. */
export const added = (before: Snapshot, after: Snapshot): Snapshot =>
  Object.fromEntries(
    Object.entries(after)
      .map(([place, names]) => [place, names.filter((name) => !(before[place] ?? []).includes(name))] as const)
      .filter(([, names]) => names.length > 0)
  )

/**
 * What appeared since `before` and stays: rechecked until nothing is left or `seconds` have passed, as processes
 * and containers being removed when the run ends may take a moment to go.
 */
export const leftovers = async (before: Snapshot, take: () => Snapshot, seconds = 10): Promise<Snapshot> => {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    const left = added(before, take())
    if (Object.keys(left).length === 0 || Date.now() > deadline) return left
    await new Promise((resolve) => setTimeout(resolve, 500))
  }
}

/** One line per place. */
export const describe = (left: Snapshot): string =>
  Object.entries(left).map(([place, names]) => `${place}: ${names.join(", ")}`).join("\n")
