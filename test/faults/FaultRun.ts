/**
 * One run of the fault suite: the real CLI started on a scenario of `FaultScenarios.ts` with `--json`, the fault
 * delivered at its plan's point (an event line of the output, then a delay), the exit awaited for at most 30 s
 * after the last signal (a run still there then is hung: it is killed), `CLOUD clean up` where the run needs it
 * (after SIGKILL, a hang, or when the CLI says to), and what is left counted (`Leftovers`).
 */
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Cli, start } from "../fixtures/Cli.ts"
import type * as SshHosts from "../fixtures/SshHosts.ts"
import * as FaultPlan from "./FaultPlan.ts"
import * as Leftovers from "./Leftovers.ts"

const scenarios = path.join(import.meta.dirname, "FaultScenarios.ts")

/** How long a run may take to exit after its last signal: past it, it is hung. */
export const exitBound = 30_000
/** How long a run left to itself (no signal yet) may take to reach its point, or to end. */
const progressBound = 120_000
/** How long `CLOUD clean up` may take. */
const cleanUpBound = 60_000

/** A VM of a run, as its output names it (`agent-000: created VM <name> at <address>`). */
export interface Vm {
  readonly agent: string
  readonly name: string
  readonly address: string
}

/** What the suite does to a cloud backend's VMs, and how it counts what the cloud holds of a namespace. */
export interface Vms {
  /** Kills the VM under the run (its host fails, as a VM that crashed). */
  readonly kill: (vm: Vm) => Promise<void>
  /** The VM's sshd processes (listener and sessions), without the commands they run. */
  readonly sshd: (vm: Vm) => Array<number>
  /** Of the run's VMs' addresses, those no VM of another namespace holds now: where its listeners would be. */
  readonly addresses: (namespace: string, vms: ReadonlyArray<Vm>) => Promise<ReadonlyArray<string>>
  /** What the cloud still holds of the namespace: VMs, firewall rules, the hosts behind them. */
  readonly leftovers: (namespace: string) => Promise<ReadonlyArray<string>>
}

/** Where one run goes: the backend's flags and environment, and what to look at after it. */
export interface Target {
  /** The flags that choose the backend (and its key, its host…). */
  readonly args: ReadonlyArray<string>
  readonly env: Record<string, string>
  /** The run's directory on the ssh host, when it runs there. */
  readonly remoteDir?: ((namespace: string) => string) | undefined
  /** The engine's socket, when it runs on Docker. */
  readonly dockerSocket?: string | undefined
  /** The run's own ssh host, for the faults that kill or stop it. */
  readonly host?: SshHosts.SshHost | undefined
  /** The run's VMs, on a cloud backend. */
  readonly vms?: Vms | undefined
  /** The first port of the run's range, when the backend fixes it (VMs: their sshd's port). */
  readonly basePort?: number | undefined
  /** What `CLOUD clean up` needs besides the namespace (the project…). */
  readonly cleanUpArgs?: ReadonlyArray<string> | undefined
  /** Delivers a fault of this backend's own (a proxy's machine killed, its connection dropped) to the run. */
  readonly inject?: ((fault: FaultPlan.Fault, namespace: string) => Promise<void>) | undefined
}

export interface Outcome {
  readonly plan: FaultPlan.Plan
  readonly namespace: string
  /** How it ended: `exit 130`, `forced, exit 130`, `killed`, `ended first, exit 0`, `died of SIGTERM`, `hung`; `+ clean up`. */
  readonly outcome: string
  readonly hung: boolean
  /** Whether anything of it is left (after its clean up, when it needed one). */
  readonly leaked: boolean
  /** From its last signal (or fault; from its start when it had none) to its exit. */
  readonly exitMillis: number
  readonly left: Leftovers.Leftovers
  /** The end of its output, and of its clean up's, for a failure's report. */
  readonly log: string
}

const sleep = (millis: number) => new Promise((r) => setTimeout(r, millis))

/** Resolves with whether the run exited within `millis`. */
const exitWithin = (cli: Cli, millis: number) =>
  Promise.race([cli.exit.then(() => true), sleep(millis).then(() => false)])

const exited = (cli: Cli) => cli.proc.exitCode !== null || cli.proc.signalCode !== null

/**
 * Waits (at most 5 s) for the end of an exited run's output: a process' exit is known before the last of what it
 * wrote is read (its "forced exit" line, say).
 */
const drained = (cli: Cli) =>
  Promise.race([
    Promise.all([cli.proc.stdout!, cli.proc.stderr!].map((stream) =>
      stream.readableEnded ? Promise.resolve() : new Promise((resolve) => stream.once("close", resolve))
    )),
    sleep(5000)
  ])

/**
 * Waits for the `nth` event line `key` of the run's `--json` output: true when printed, false if it exited first.
 * The VMs the run creates are added to `vms` as their lines come.
 */
const eventWatcher = (cli: Cli, vms: Array<Vm>) => {
  const seen = new Map<string, number>()
  const waiters: Array<{ key: string; nth: number; resolve: (ok: boolean) => void }> = []
  let buffer = ""
  cli.proc.stdout!.on("data", (data: Buffer) => {
    buffer += data.toString()
    for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
      const line = buffer.slice(0, end)
      buffer = buffer.slice(end + 1)
      let event: { type?: string; message?: string }
      try {
        event = JSON.parse(line) as typeof event
      } catch {
        continue
      }
      const key = event.type === "log" ? `log ${event.message}` : String(event.type)
      const created = /^(\S+): created VM (\S+) at (\S+)$/.exec(event.type === "log" ? event.message ?? "" : "")
      if (created !== null) vms.push({ agent: created[1]!, name: created[2]!, address: created[3]! })
      const n = (seen.get(key) ?? 0) + 1
      seen.set(key, n)
      for (const w of waiters) if (w.key === key && w.nth === n) w.resolve(true)
    }
  })
  return (key: string, nth: number) =>
    new Promise<boolean>((resolve) => {
      if ((seen.get(key) ?? 0) >= nth) return resolve(true)
      waiters.push({ key, nth, resolve })
      void cli.exit.then(() => resolve(false))
    })
}

/** The sshd processes of a host (listener and sessions), without the commands they run. */
const sshdProcesses = (host: SshHosts.SshHost, tree: (pid: number) => Array<number>) =>
  tree(host.pid()).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, "latin1").startsWith("sshd")
    } catch {
      return false
    }
  })

const signalAll = (pids: ReadonlyArray<number>, signal: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, signal)
    } catch {
      // gone
    }
  }
}

/**
 * A tiny file system for the artifacts: a tmpfs of `kib` KiB mounted on a fresh directory, or why it cannot be
 * mounted (not root, no `mount`).
 */
const tinyDisk = (kib: number): { readonly dir: string; readonly release: () => void } | string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-fault-disk-"))
  const r = child.spawnSync("mount", ["-t", "tmpfs", "-o", `size=${kib}k,mode=0755`, "tmpfs", dir], { stdio: "pipe" })
  if (r.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true })
    return `cannot mount a tmpfs (${(r.stderr?.toString() ?? "").trim() || r.error?.message || `exit ${r.status}`})`
  }
  return {
    dir,
    release: () => {
      child.spawnSync("umount", [dir], { stdio: "pipe" })
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** Runs one fault: see the module's comment. `basePort` starts the run's own port range (2 agents × 8 ports). */
export const run = async (
  plan: FaultPlan.Plan,
  target: Target,
  options: { readonly basePort: number; readonly tree: (pid: number) => Array<number> }
): Promise<Outcome> => {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-fault-"))
  const namespace = `fault-${plan.backend.slice(0, 3)}-${plan.seed.toString(36)}`
  const env = { ...target.env, TEZT_CLOUD_STATE_DIR: stateDir, TEZT_CLOUD_SCENARIOS: scenarios }
  const portsPerVm = 8
  const extra: Array<string> = []
  // A full disk: a tiny tmpfs when we may mount one; otherwise a directory made unwritable once the run started
  // (which only stops a user that is not root, who could not mount either).
  const mounted = plan.fault === "artifacts disk full" ? tinyDisk(plan.diskKib) : undefined
  const disk = typeof mounted === "string" ? undefined : mounted
  const readOnlyDir = typeof mounted === "string"
    ? fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-fault-ro-"))
    : undefined
  const artifacts = disk?.dir ?? readOnlyDir
  if (artifacts !== undefined) extra.push("--artifacts-dir", path.join(artifacts, "artifacts"))
  const cli = start(
    [
      "FAULTS",
      ...plan.tags,
      ...target.args,
      "--json",
      "--tezt-cloud",
      namespace,
      "--vm-base-port",
      String(options.basePort),
      "--ports-per-vm",
      String(portsPerVm),
      ...extra
    ],
    env
  )
  const vms: Array<Vm> = []
  const waitEvent = eventWatcher(cli, vms)
  // The VM a fault hits: the first agent's (the one that runs the body's command).
  const firstVm = () => vms.find((vm) => vm.agent === "agent-000") ?? vms[0]
  const started = Date.now()
  let faultAt: number | undefined
  let delivered = false
  let stopped: Array<number> = []

  if (readOnlyDir !== undefined) {
    void waitEvent("deploy-done", 1).then(() => fs.chmodSync(path.join(readOnlyDir, "artifacts"), 0o555))
  }
  const point = plan.point
  const reached = point === undefined
    ? false
    : await Promise.race([waitEvent(point.event, point.nth), sleep(progressBound).then(() => false)])
  if (point !== undefined && reached) {
    await sleep(point.delayMillis)
    if (!exited(cli)) {
      delivered = true
      faultAt = Date.now()
      switch (plan.fault) {
        case "host killed":
          await target.host!.kill()
          faultAt = Date.now()
          break
        case "VM killed":
          await target.vms!.kill(firstVm()!)
          faultAt = Date.now()
          break
        case "proxy killed":
        case "connection dropped":
          await target.inject!(plan.fault, namespace)
          faultAt = Date.now()
          break
        case "sshd stopped":
          stopped = target.vms === undefined
            ? sshdProcesses(target.host!, options.tree)
            : target.vms.sshd(firstVm()!)
          signalAll(stopped, "SIGSTOP")
          await sleep(plan.thenMillis)
          cli.proc.kill("SIGINT")
          faultAt = Date.now()
          break
        default:
          cli.proc.kill(plan.signal!)
          if (plan.fault === "double SIGINT") {
            await sleep(plan.thenMillis)
            if (!exited(cli)) {
              cli.proc.kill("SIGINT")
              faultAt = Date.now()
            }
          }
      }
    }
  }

  const from = faultAt ?? started
  const hung = !(await exitWithin(cli, (faultAt === undefined ? progressBound : exitBound) - (Date.now() - from)))
  if (hung) {
    cli.proc.kill("SIGKILL")
    await cli.exit
  }
  const exitMillis = Date.now() - from
  await drained(cli)
  // The host comes back: clean up reaches it again.
  signalAll(stopped, "SIGCONT")
  if (plan.fault === "host killed" && delivered) await target.host!.restart()

  // A signal that comes once the run has let go of its signals, as it exits, ends it the default way.
  const code = cli.proc.exitCode === null ? `died of ${cli.proc.signalCode}` : `exit ${cli.proc.exitCode}`
  const forced = cli.stderr().includes("forced exit")
  const killed = delivered && plan.signal === "SIGKILL"
  let outcome = hung
    ? "hung"
    : killed
    ? "killed"
    : `${delivered || point === undefined ? "" : "ended first, "}${forced ? "forced, " : ""}${code}`
  // Said in the table: such a run tests an unwritable directory, not a full disk.
  if (typeof mounted === "string") outcome += ` (${mounted}: a directory made read-only instead)`
  let log = `${cli.stdout().slice(-3000)}\n${cli.stderr().slice(-3000)}`
  /**
   * A command after the run (`what` in the outcome, `heading` in the log), killed when it does not end in time.
   * It needs no scenario: started as a user starts it (`./tezt-cloud`), from the CLI's start-up snapshot, it costs a
   * third less CPU than `bin.mjs` and the scenarios' module.
   */
  const after = async (args: ReadonlyArray<string>, what: string, heading: string) => {
    const command = start(args, { ...env, TEZT_CLOUD_SCENARIOS: "" }, { via: "launcher" })
    const done = await exitWithin(command, cleanUpBound)
    if (!done) {
      command.proc.kill("SIGKILL")
      await command.exit
    }
    await drained(command)
    const exitCode = command.proc.exitCode
    outcome += done ? ` + ${what}${exitCode === 0 ? "" : ` exit ${exitCode}`}` : ` + ${what} hung`
    log += `\n${heading}:\n${command.stdout().slice(-2000)}\n${command.stderr().slice(-2000)}`
  }
  // A proxy's client that detached (SIGTERM, SIGHUP) left the run going there, as it says: `proxy stop` ends it.
  if (!hung && `${cli.stdout()}${cli.stderr()}`.includes(`'tezt-cloud proxy stop --tezt-cloud ${namespace}' ends it`)) {
    await after(["proxy", "stop", "--tezt-cloud", namespace], "proxy stop", "proxy stop")
  }
  if (killed || hung || cli.stderr().includes("CLOUD clean up")) {
    await after(
      ["CLOUD", "clean", "up", "--tezt-cloud", namespace, ...(target.cleanUpArgs ?? [])],
      "clean up",
      "CLOUD clean up"
    )
  }
  const left = await Leftovers.collect({
    stateDir,
    namespace,
    ports: [options.basePort, options.basePort + 2 * portsPerVm],
    remoteDir: target.remoteDir?.(namespace),
    dockerSocket: target.dockerSocket,
    addresses: target.vms === undefined ? undefined : () => target.vms!.addresses(namespace, vms),
    cloud: target.vms === undefined ? undefined : () => target.vms!.leftovers(namespace)
  })
  disk?.release()
  if (readOnlyDir !== undefined) fs.rmSync(readOnlyDir, { recursive: true, force: true })
  const leaked = Leftovers.count(left) > 0
  // Kept for a look when something is left (or when asked: `$TEZT_CLOUD_FAULT_KEEP`, with its events.jsonl).
  if (!leaked && process.env.TEZT_CLOUD_FAULT_KEEP === undefined) fs.rmSync(stateDir, { recursive: true, force: true })
  return { plan, namespace, outcome, hung, leaked, exitMillis, left, log }
}
