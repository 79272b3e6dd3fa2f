/**
 * Fan-out benchmark: run `true` (and `echo`) on N ssh hosts at once, side by side with the tools users reach for,
 * in one run on the same hosts (real OpenSSH sshd instances on loopback ports, test/fixtures/SshHosts.ts):
 *
 *   - tezt-cloud agents exec -- CMD, warm: `./tezt-cloud` (the launcher a user runs: here, its thin client)
 *     against the control socket of a live run, which a child process plays (`LiveRun`): it serves
 *     `AgentsControl` with the runners `SshSandbox.reattach` opens on the deployment record it writes (what
 *     `--keep-alive` runs serve).
 *     Issue 7's target: ≥ 10× faster than ControlMaster and ≥ 100× faster than ansible.
 *   - tezt-cloud agents exec -- CMD, cold: the same command with no socket (the launcher starts the CLI's
 *     snapshot), so it loads, connects to every host and runs the command. Target: ≥ 2× faster than pssh.
 *   - tezt-cloud transport, warm       (SshClient with its connections already open: what a scenario pays)
 *   - OpenSSH, one connection per command
 *   - OpenSSH with ControlMaster (masters opened beforehand, warm)
 *   - parallel-ssh (pssh)
 *   - ansible -m command
 *
 * Prints wall times, ratios to tezt-cloud cold, the targets' ratios, and the cold CLI's RSS per host; and, per tool,
 * the CPU one command costs on each side (the hosts here share this machine's cores, so wall time hides it): the
 * orchestrator side (the measured command and every process it waited for, from getrusage of children; plus the
 * live run's process for the warm row, and ControlMaster's masters, from /proc) and the host side (every sshd tree,
 * from /proc/<pid>/stat before and after), with the wall time they project for 1000 hosts that have their own CPUs:
 * host CPU of one command + the orchestrator's fixed CPU per invocation (warm `agents exec`: its client process;
 * cold: the CLI's loading, from a second measure on one host) + its CPU per command × 1000, on one core.
 * Performance lives here, never in timed test assertions. Run: `npm run bench:ssh` (as root; needs
 * openssh-server, pssh, ansible from Debian). `BENCH_SIZES=1,16` picks the host counts (default 1,16,64),
 * `BENCH_REPEAT` the runs per measure (default 3), `BENCH_NO_ANSIBLE=1` skips ansible (minutes at 64 hosts).
 */
import type { Agent } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SshClient, SshKeys } from "../packages/ssh/src/index.ts"
import * as SshHosts from "../test/fixtures/SshHosts.ts"
import * as LiveRecord from "./LiveRecord.ts"
import * as LiveRun from "./LiveRun.ts"

const sizes = (process.env.BENCH_SIZES ?? "1,16,64").split(",").map(Number)
const commands = (process.env.BENCH_COMMANDS ?? "true,echo hello").split(",")
const repeat = Number(process.env.BENCH_REPEAT ?? 3)
/**
 * Untimed fan-outs before the warm rows' measures: a live run's steady state. A fresh process compiles its serving
 * code over its first ~15 fan-outs (Node's JIT, on threads whose CPU the process counts) and pays up to 2× per
 * command meanwhile (`npm run bench:exec-cpu` in blocks of 5 shows it); a run pays that once, not per command.
 */
const warmUp = 20
const root = path.resolve(import.meta.dirname, "..")
const work = fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-bench-"))
const stateDir = path.join(work, "state")
const namespace = "bench"
const user = SshHosts.user
const sshOptions = [
  "-o",
  "StrictHostKeyChecking=no",
  "-o",
  "UserKnownHostsFile=/dev/null",
  "-o",
  "LogLevel=ERROR",
  "-o",
  "BatchMode=yes"
]

const which = (tool: string) => child.spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0

/** Runs a shell command line, returns its wall time in ms (fails loudly on a non-zero exit). */
const timed = (line: string, env: Record<string, string> = {}): number => {
  const started = performance.now()
  const r = child.spawnSync("sh", ["-c", line], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    maxBuffer: 1 << 26
  })
  const elapsed = performance.now() - started
  if (r.status !== 0) throw new Error(`${line.slice(0, 120)}… exited ${r.status}: ${r.stderr.slice(0, 400)}`)
  return elapsed
}

/**
 * Runs argv under a small Python parent that times it and then reads `getrusage(RUSAGE_CHILDREN)`: the user +
 * system CPU of argv and of every descendant it waited for (the ssh clients of pssh or of a shell line), and the
 * peak RSS of the largest one. The parent's own start-up is outside both: it counts from its first line, so what
 * children a `python3` wrapper ran before (pyenv's shim runs several, ~60 ms of CPU) are not counted.
 * Asynchronous, so that this process can keep serving a control socket meanwhile.
 */
const rusageProbe = [
  "import os, resource, subprocess, sys, time",
  "b = resource.getrusage(resource.RUSAGE_CHILDREN)",
  "t = time.perf_counter()",
  "r = subprocess.run(sys.argv[1:])",
  "ms = (time.perf_counter() - t) * 1000",
  "u = resource.getrusage(resource.RUSAGE_CHILDREN)",
  "cpu = (u.ru_utime + u.ru_stime - b.ru_utime - b.ru_stime) * 1000",
  "os.write(3, f'{ms} {cpu} {u.ru_maxrss}'.encode())",
  "sys.exit(r.returncode)"
].join("\n")

interface Run {
  readonly ms: number
  /** CPU (user + system) of the child and its waited descendants, ms. */
  readonly cpuMs: number
  readonly peakKb: number
}

const measured = (argv: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<Run> =>
  new Promise((resolve, reject) => {
    const proc = child.spawn("python3", ["-c", rusageProbe, ...argv], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe", "pipe"]
    })
    let err = ""
    let out = ""
    proc.stdio[2]!.on("data", (d: Buffer) => (err += d.toString()))
    proc.stdio[3]!.on("data", (d: Buffer) => (out += d.toString()))
    proc.on("close", (code) => {
      const [ms, cpuMs, peakKb] = out.trim().split(" ").map(Number)
      if (code === 0 && peakKb !== undefined) resolve({ ms: ms!, cpuMs: cpuMs!, peakKb })
      else reject(new Error(`${argv.join(" ").slice(0, 160)} exited ${code}: ${err.slice(0, 400)}`))
    })
  })

const measuredLine = (line: string, env: Record<string, string> = {}) => measured(["sh", "-c", line], env)

const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)

const ticks = 1000 / Number(child.execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim())

/**
 * CPU (ms) spent so far by the process trees under `roots`: for each live process of a tree, its utime + stime
 * and the cutime + cstime of the children it has reaped (/proc/<pid>/stat). Sampled before and after a measure,
 * the difference is the CPU every process of the trees spent meanwhile, live or reaped within the tree.
 */
const treeCpuMs = (roots: ReadonlyArray<number>): number => {
  const children = new Map<number, Array<number>>()
  const cpu = new Map<number, number>()
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, "latin1")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      const ppid = Number(fields[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)])
      // Fields 14–17 of stat (utime stime cutime cstime) are 11–14 after the command name.
      cpu.set(
        Number(entry),
        (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * ticks
      )
    } catch {
      // gone
    }
  }
  let total = 0
  const visit = (pid: number) => {
    total += cpu.get(pid) ?? 0
    for (const c of children.get(pid) ?? []) visit(c)
  }
  for (const top of roots) visit(top)
  return total
}

/** CPU (ms) spent so far by live processes that fork nothing (ControlMaster's masters): /proc/<pid>/schedstat, ns. */
const liveCpuMs = (pids: ReadonlyArray<number>): number =>
  sum(pids.map((pid) => {
    try {
      return Number(fs.readFileSync(`/proc/${pid}/schedstat`, "latin1").split(" ")[0]) / 1e6
    } catch {
      return 0
    }
  }))

/**
 * The hosts' side: a cpuacct cgroup (v1) holding every sshd listener, so that each session, shell and command they
 * fork is in it and charged to it in ns as it runs. /proc/<pid>/stat is the fallback, but it rounds each process's
 * times down to clock ticks (10 ms), which loses a warm command's ~1 ms on each of 64 session processes.
 */
const hostAccounting = (pids: ReadonlyArray<number>): { readonly cpuMs: () => number; readonly close: () => void } => {
  const group = path.join("/sys/fs/cgroup/cpuacct", `tezt-cloud-bench-${process.pid}`)
  try {
    fs.mkdirSync(group)
    for (const pid of pids) fs.writeFileSync(path.join(group, "cgroup.procs"), String(pid))
    process.stderr.write(`host CPU from the cpuacct cgroup ${group}\n`)
    return {
      cpuMs: () => Number(fs.readFileSync(path.join(group, "cpuacct.usage"), "latin1")) / 1e6,
      close: () => {
        try {
          fs.rmdirSync(group)
        } catch {
          // a session still exiting: the group goes with the next boot
        }
      }
    }
  } catch {
    process.stderr.write("no cpuacct cgroup: host CPU from /proc/<pid>/stat (10 ms ticks per process)\n")
    return { cpuMs: () => treeCpuMs(pids), close: () => undefined }
  }
}

/** This process's own CPU (user + system, ms) so far. */
const selfCpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

const median = (xs: ReadonlyArray<number>) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)]!
const settle = () => new Promise((resolve) => setTimeout(resolve, 300))

/** One tool's figures: median wall time, and CPU per command (one command on one host) on each side. */
interface Figures {
  readonly ms: number
  /** All the orchestrator's CPU of a run, divided by its commands (the fixed part spread over N). */
  readonly orchestratorMs: number
  /** Of `orchestratorMs`, the part outside the measured children (the live run, ControlMaster's masters). */
  readonly extraMs: number
  /**
   * The orchestrator's CPU split into what one invocation costs whatever the host count (warm `agents exec`: its
   * client process; cold: the CLI's loading) and what each command adds (everything else).
   */
  readonly fixedMs: number
  readonly perCommandMs: number
  readonly hostMs: number
}

/** Hosts in the projection. */
const fleet = 1000

/** The orchestrator's CPU per command on `fleet` hosts: its fixed cost spread over them, plus each command's. */
const fleetOrchestratorMs = (f: Figures) => f.fixedMs / fleet + f.perCommandMs

/**
 * The projected wall time (ms) of one command on `fleet` hosts with their own CPUs, one orchestrator core: the
 * host CPU of one command, the fixed cost once, each command's orchestrator cost `fleet` times.
 */
const projected = (f: Figures) => f.hostMs + f.fixedMs + fleet * f.perCommandMs

const main = async () => {
  const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, path.join(work, "home")))
  const keyFile = key.path
  const maxN = Math.max(...sizes)
  process.stderr.write(`starting ${maxN} sshd hosts…\n`)
  const hosts = await Promise.all(
    Array.from({ length: maxN }, () => SshHosts.start({ authorizedKeys: [key.publicKey] }))
  )
  const hostCpu = hostAccounting(hosts.map((h) => h.pid()))
  const rows: Array<Record<string, string | number>> = []
  const accounting: Array<Record<string, string | number>> = []
  const targets: Array<Record<string, string | number>> = []
  try {
    for (const n of sizes) {
      const subset = hosts.slice(0, n)
      for (const command of commands) {
        const results: Record<string, Figures> = {}
        /**
         * Runs a tool's measures and records its figures: the orchestrator side is the CPU of the measured children
         * (and their waited descendants) plus `extra` (CPU of processes outside them: this process when it serves,
         * ControlMaster's masters), the host side the CPU of every sshd host meanwhile (those outside
         * the subset are idle).
         */
        const account = async (
          tool: string,
          runs: () => Promise<ReadonlyArray<Run>>,
          extra: () => number | Promise<number> = () => 0,
          /** How the orchestrator's CPU splits (default: all of it per command, no fixed part). */
          split: "per-command" | "client-is-fixed" = "per-command"
        ): Promise<ReadonlyArray<Run>> => {
          await settle()
          const hostBefore = hostCpu.cpuMs()
          const extraBefore = await extra()
          const done = await runs()
          await settle()
          const hostMs = hostCpu.cpuMs() - hostBefore
          const extraMs = (await extra()) - extraBefore
          const count = n * done.length
          const childrenMs = sum(done.map((r) => r.cpuMs))
          const orchestratorMs = (childrenMs + extraMs) / count
          results[tool] = {
            ms: median(done.map((r) => r.ms)),
            orchestratorMs,
            extraMs: extraMs / count,
            // Warm `agents exec`: one client process per invocation, the live run's work per command.
            fixedMs: split === "client-is-fixed" ? childrenMs / done.length : 0,
            perCommandMs: split === "client-is-fixed" ? extraMs / count : orchestratorMs,
            hostMs: hostMs / count
          }
          return done
        }
        const repeated = async (once: () => Promise<Run>, times = repeat): Promise<ReadonlyArray<Run>> => {
          const out: Array<Run> = []
          for (let i = 0; i < times; i++) out.push(await once())
          return out
        }
        // tezt-cloud agents exec: a live deployment record listing one ssh-host agent per host, this process as
        // the run that keeps it.
        const descriptors = LiveRecord.descriptors(subset, { namespace, user, keyFile })
        const writeRecord = (agents: ReadonlyArray<Agent.Descriptor>) => LiveRecord.write(stateDir, namespace, agents)
        writeRecord(descriptors)
        // What a user runs: the launcher, which picks the thin client when the run's socket is there and the
        // start-up snapshot otherwise.
        const cli = [
          path.join(root, "tezt-cloud"),
          "agents",
          "exec",
          "--tezt-cloud",
          namespace,
          "--",
          ...command.split(" ")
        ]
        const env = { TEZT_CLOUD_STATE_DIR: stateDir, HOME: path.join(work, "home"), TEZT_CLOUD_SCENARIOS: "" }
        // Cold: no run serves the socket, the CLI loads and connects.
        const cliRuns = await account("tezt-cloud agents exec (cold)", () => repeated(() => measured(cli, env)))
        const peakKb = median(cliRuns.map((r) => r.peakKb))
        if (n > 1) {
          // The cold CLI's fixed part (loading, once per invocation) and what each host adds (its connection and
          // command): the line through the same command on one host and on N.
          writeRecord(descriptors.slice(0, 1))
          const single = await repeated(() => measured(cli, env))
          writeRecord(descriptors)
          const one = sum(single.map((r) => r.cpuMs)) / single.length
          const all = sum(cliRuns.map((r) => r.cpuMs)) / cliRuns.length
          const perCommandMs = Math.max(0, (all - one) / (n - 1))
          const cold = results["tezt-cloud agents exec (cold)"]!
          results["tezt-cloud agents exec (cold)"] = {
            ...cold,
            fixedMs: Math.max(0, one - perCommandMs),
            perCommandMs
          }
        }

        // Warm: a live run in a process of its own serves the control socket with its connected runners and
        // writes the run's events (`events.jsonl`); its CPU is the live run's share (this process's harness work is
        // outside it, as it is outside a real run).
        const live = await LiveRun.start({ stateDir, namespace, hosts: subset, user, keyFile, eventsDir: work })
        try {
          // Untimed rounds first (`warmUp`): a live run has used its agents before; the first command on a
          // connection also starts its executor.
          for (let i = 0; i < warmUp; i++) await measured(cli, env)
          await account(
            "tezt-cloud agents exec (warm)",
            () => repeated(() => measured(cli, env)),
            async () => {
              const cpu = await live.cpu()
              return cpu.user + cpu.system
            },
            "client-is-fixed"
          )
        } finally {
          await live.close()
          writeRecord(descriptors)
        }

        // The transport warm, in this process.
        await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const connections = yield* Effect.forEach(
            subset,
            (h) =>
              SshClient.connect({ host: h.host, port: h.port, user }, {
                privateKey: key.privateKey,
                hostKeys: { _tag: "Insecure" }
              }),
            { concurrency: "unbounded" }
          )
          const once = Effect.gen(function*() {
            const started = performance.now()
            yield* Effect.forEach(connections, (c) => c.run(command), { concurrency: "unbounded" })
            // In-process: no child; this process's CPU is the `extra` of the account.
            return { ms: performance.now() - started, cpuMs: 0, peakKb: 0 }
          })
          // Untimed rounds first, as for warm `agents exec`.
          for (let i = 0; i < warmUp; i++) yield* once
          yield* Effect.promise(() =>
            account("tezt-cloud transport (warm)", () => repeated(() => Effect.runPromise(once)), selfCpuMs)
          )
        })))

        const sshCmd = (h: SshHosts.SshHost, extra: Array<string> = []) =>
          ["ssh", ...sshOptions, ...extra, "-i", keyFile, "-p", String(h.port), `${user}@${h.host}`, command].map((w) =>
            `'${w}'`
          ).join(" ")
        await account(
          "OpenSSH per command",
          () => repeated(() => measuredLine(`${subset.map((h) => `${sshCmd(h)} >/dev/null &`).join("\n")}\nwait`))
        )

        const controlDir = fs.mkdtempSync(path.join(work, "cm-"))
        const cm = (h: SshHosts.SshHost) => ["-o", `ControlPath=${controlDir}/${h.port}`]
        timed(
          subset.map((h) =>
            `ssh ${sshOptions.join(" ")} ${
              cm(h).join(" ")
            } -o ControlMaster=yes -o ControlPersist=300 -fN -i ${keyFile} -p ${h.port} ${user}@${h.host}`
          ).join("\n")
        )
        // The masters fork into the background (-f): found by the ControlPath on their command line.
        const masters = fs.readdirSync("/proc").filter((e) => /^\d+$/.test(e)).filter((e) => {
          try {
            return fs.readFileSync(`/proc/${e}/cmdline`, "latin1").includes(`ControlPath=${controlDir}/`)
          } catch {
            return false
          }
        }).map(Number)
        await account(
          "OpenSSH ControlMaster (warm)",
          () =>
            repeated(() => measuredLine(`${subset.map((h) => `${sshCmd(h, cm(h))} >/dev/null &`).join("\n")}\nwait`)),
          () => liveCpuMs(masters)
        )
        for (const h of subset) {
          child.spawnSync("ssh", [...cm(h), "-O", "exit", `${user}@${h.host}`], { stdio: "ignore" })
        }

        if (which("parallel-ssh")) {
          const hostsFile = path.join(work, `pssh-${n}`)
          fs.writeFileSync(hostsFile, subset.map((h) => `${user}@${h.host}:${h.port}`).join("\n") + "\n")
          await account("pssh", () =>
            repeated(() =>
              measuredLine(
                `parallel-ssh -h ${hostsFile} -p ${n} ${
                  sshOptions.map((o) => `-O ${o}`).filter((o) => o !== "-O -o").join(" ")
                } -x "-i ${keyFile}" ${command} >/dev/null`
              )
            ))
        }
        if (which("ansible") && process.env.BENCH_NO_ANSIBLE === undefined) {
          const inventory = path.join(work, `inventory-${n}`)
          fs.writeFileSync(
            inventory,
            "[all]\n" + subset.map((h, i) =>
              `h${i} ansible_host=${h.host} ansible_port=${h.port} ansible_user=${user} ansible_ssh_private_key_file=${keyFile}`
            ).join("\n") + "\n"
          )
          // ANSIBLE_SSH_ARGS replaces ansible's default ControlPersist: its ssh processes are all its children.
          await account("ansible -m command", () =>
            repeated(
              () =>
                measuredLine(`ansible all -i ${inventory} -m command -a '${command}' -f ${n} >/dev/null`, {
                  ANSIBLE_HOST_KEY_CHECKING: "False",
                  ANSIBLE_SSH_ARGS: "-o UserKnownHostsFile=/dev/null",
                  ANSIBLE_PYTHON_INTERPRETER: "auto_silent"
                }),
              Math.min(repeat, 2)
            ))
        }
        const reference = results["tezt-cloud agents exec (cold)"]!.ms
        for (const [tool, f] of Object.entries(results)) {
          const ms = f.ms
          accounting.push({
            hosts: n,
            command,
            tool,
            "wall ms": Math.round(ms),
            "orchestrator CPU ms/cmd": f.orchestratorMs.toFixed(2),
            "of which live run / masters": f.extraMs.toFixed(2),
            "fixed CPU ms/invocation": f.fixedMs.toFixed(1),
            "CPU ms/cmd beside it": f.perCommandMs.toFixed(2),
            "host CPU ms/cmd": f.hostMs.toFixed(2),
            [`${fleet} hosts: orch. CPU ms/cmd`]: fleetOrchestratorMs(f).toFixed(2),
            [`${fleet} hosts, projected s`]: (projected(f) / 1000).toFixed(2)
          })
          rows.push({
            hosts: n,
            command,
            tool,
            "wall ms": Math.round(ms),
            "× tezt-cloud cold": (ms / reference).toFixed(2)
          })
        }
        rows.push({
          hosts: n,
          command,
          tool: "tezt-cloud agents exec (cold): peak RSS (total / per host)",
          "wall ms": "",
          "× tezt-cloud cold": `${(peakKb / 1024).toFixed(0)} / ${(peakKb / 1024 / n).toFixed(1)} MiB`
        })
        const ratioOf = (value: (f: Figures) => number) => (peer: string, ours: string) =>
          results[peer] === undefined ? "n/a" : `${(value(results[peer]!) / value(results[ours]!)).toFixed(1)}×`
        const ratio = ratioOf((f) => f.ms)
        const cpuRatio = ratioOf((f) => f.orchestratorMs)
        const hostRatio = ratioOf((f) => f.hostMs)
        const projectedRatio = ratioOf(projected)
        targets.push({
          hosts: n,
          command,
          "warm ms": Math.round(results["tezt-cloud agents exec (warm)"]!.ms),
          "ControlMaster ÷ warm (≥ 10)": ratio("OpenSSH ControlMaster (warm)", "tezt-cloud agents exec (warm)"),
          "ansible ÷ warm (≥ 100)": ratio("ansible -m command", "tezt-cloud agents exec (warm)"),
          "cold ms": Math.round(reference),
          "pssh ÷ cold (≥ 2)": ratio("pssh", "tezt-cloud agents exec (cold)"),
          "orch. CPU: ControlMaster ÷ warm (≥ 10)": cpuRatio(
            "OpenSSH ControlMaster (warm)",
            "tezt-cloud agents exec (warm)"
          ),
          [`orch. CPU at ${fleet} hosts: ControlMaster ÷ warm (≥ 10)`]: ratioOf(fleetOrchestratorMs)(
            "OpenSSH ControlMaster (warm)",
            "tezt-cloud agents exec (warm)"
          ),
          "host CPU: OpenSSH session ÷ warm (≥ 3)": hostRatio("OpenSSH per command", "tezt-cloud agents exec (warm)"),
          "host CPU: ControlMaster ÷ warm": hostRatio("OpenSSH ControlMaster (warm)", "tezt-cloud agents exec (warm)"),
          "1000 hosts: ControlMaster ÷ warm": projectedRatio(
            "OpenSSH ControlMaster (warm)",
            "tezt-cloud agents exec (warm)"
          ),
          "1000 hosts: pssh ÷ cold": projectedRatio("pssh", "tezt-cloud agents exec (cold)")
        })
        process.stderr.write(`done: ${n} hosts, ${command}\n`)
      }
    }
  } finally {
    await Promise.all(hosts.map((h) => h.stop()))
    hostCpu.close()
    fs.rmSync(work, { recursive: true, force: true })
  }
  console.table(rows)
  console.table(accounting)
  console.table(targets)
}

await main()
