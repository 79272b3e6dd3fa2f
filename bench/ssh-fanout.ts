/**
 * Fan-out benchmark: run `true` (and `echo`) on N ssh hosts at once, side by side with the tools users reach for,
 * in one run on the same hosts (real OpenSSH sshd instances on loopback ports, test/fixtures/SshHosts.ts):
 *
 *   - tezt-cloud agents exec -- CMD, warm: the real CLI against the control socket of a live run, which this
 *     process simulates: it serves `AgentsControl` with the runners `SshSandbox.reattach` opens on the deployment
 *     record it writes (what `--keep-alive` runs serve). Issue 7's target: ≥ 10× faster than ControlMaster and
 *     ≥ 100× faster than ansible.
 *   - tezt-cloud agents exec -- CMD, cold: the same CLI with no socket, so it loads, connects to every host and
 *     runs the command. Target: ≥ 2× faster than pssh.
 *   - tezt-cloud transport, warm       (SshClient with its connections already open: what a scenario pays)
 *   - OpenSSH, one connection per command
 *   - OpenSSH with ControlMaster (masters opened beforehand, warm)
 *   - parallel-ssh (pssh)
 *   - ansible -m command
 *
 * Prints wall times, ratios to tezt-cloud cold, the targets' ratios, and the cold CLI's RSS per host.
 * Performance lives here, never in timed test assertions. Run: `npm run bench:ssh` (as root; needs
 * openssh-server, pssh, ansible from Debian). `BENCH_SIZES=1,16` picks the host counts (default 1,16,64),
 * `BENCH_REPEAT` the runs per measure (default 3), `BENCH_NO_ANSIBLE=1` skips ansible (minutes at 64 hosts).
 */
import { type Agent, AgentsControl, CloudConfig, Ledger, RunEvents } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { SshClient, SshHost, SshKeys, SshSandbox } from "../packages/ssh/src/index.ts"
import * as SshHosts from "../test/fixtures/SshHosts.ts"

const sizes = (process.env.BENCH_SIZES ?? "1,16,64").split(",").map(Number)
const repeat = Number(process.env.BENCH_REPEAT ?? 3)
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

/** Peak RSS (kB) of a child process, sampled from /proc while it runs. */
const timedWithRss = (
  argv: ReadonlyArray<string>,
  env: Record<string, string>
): Promise<{ ms: number; peakKb: number }> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const proc = child.spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"]
    })
    let err = ""
    proc.stderr.on("data", (d: Buffer) => (err += d.toString()))
    let peakKb = 0
    const sample = setInterval(() => {
      try {
        const status = fs.readFileSync(`/proc/${proc.pid}/status`, "utf8")
        peakKb = Math.max(peakKb, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0))
      } catch {
        // exited
      }
    }, 5)
    proc.on("exit", (code) => {
      clearInterval(sample)
      const ms = performance.now() - started
      if (code === 0) resolve({ ms, peakKb })
      else reject(new Error(`${argv.join(" ")} exited ${code}: ${err}`))
    })
  })

/** Wall time (ms) of a child process, without blocking this process's event loop (it may be serving). */
const timedAsync = (argv: ReadonlyArray<string>, env: Record<string, string>): Promise<number> =>
  timedWithRss(argv, env).then((r) => r.ms)

const median = (xs: ReadonlyArray<number>) => xs.toSorted((a, b) => a - b)[Math.floor(xs.length / 2)]!

const main = async () => {
  const key = await Effect.runPromise(SshKeys.ensure(namespace, undefined, path.join(work, "home")))
  const keyFile = key.path
  const maxN = Math.max(...sizes)
  process.stderr.write(`starting ${maxN} sshd hosts…\n`)
  const hosts = await Promise.all(
    Array.from({ length: maxN }, () => SshHosts.start({ authorizedKeys: [key.publicKey] }))
  )
  const rows: Array<Record<string, string | number>> = []
  const targets: Array<Record<string, string | number>> = []
  try {
    for (const n of sizes) {
      const subset = hosts.slice(0, n)
      for (const command of ["true", "echo hello"]) {
        const results: Record<string, number> = {}
        // tezt-cloud agents exec: a live deployment record listing one ssh-host agent per host, this process as
        // the run that keeps it.
        const recordDir = path.join(stateDir, namespace)
        fs.mkdirSync(recordDir, { recursive: true })
        const descriptors: ReadonlyArray<Agent.Descriptor> = subset.map((h, i) => ({
          backend: "ssh-host",
          agent: `agent-${i}`,
          user,
          host: h.host,
          port: h.port,
          key: keyFile,
          home: "/tmp",
          marker: `${namespace}/agent-${i}`,
          namespace,
          binariesPath: "/tmp/tezt-runners",
          portStart: 30000,
          checkFileConsistency: 1
        }))
        fs.writeFileSync(
          path.join(recordDir, "deployment.json"),
          JSON.stringify({ namespace, pid: process.pid, agents: descriptors })
        )
        const cli = [
          process.execPath,
          path.join(root, "packages/cli/src/bin.mjs"),
          "agents",
          "exec",
          "--tezt-cloud",
          namespace,
          "--",
          ...command.split(" ")
        ]
        const env = { TEZT_CLOUD_STATE_DIR: stateDir, HOME: path.join(work, "home") }
        // Cold: no run serves the socket, the CLI loads and connects.
        const cliRuns = []
        for (let i = 0; i < repeat; i++) cliRuns.push(await timedWithRss(cli, env))
        results["tezt-cloud agents exec (cold)"] = median(cliRuns.map((r) => r.ms))
        const peakKb = median(cliRuns.map((r) => r.peakKb))

        // Warm: this process plays the live run, serving its control socket with its own connected runners.
        const config = await Effect.runPromise(
          CloudConfig.resolve({ tezt_cloud: namespace, localhost: true }, {}, {})
        )
        results["tezt-cloud agents exec (warm)"] = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const runners = yield* SshSandbox.reattach(descriptors, SshHost.settings(config, stateDir), {
            oneCommandEach: false
          }).pipe(
            Effect.provide(RunEvents.RunEvents.layerNoop)
          )
          yield* AgentsControl.serve(AgentsControl.socketFile(Ledger.ledgerFile(stateDir, namespace)), runners)
          // One untimed round first: a live run has used its agents before (with the persistent executor, the first
          // command on a connection also starts it).
          yield* Effect.promise(() => timedAsync(cli, env))
          const runs: Array<number> = []
          for (let i = 0; i < repeat; i++) runs.push(yield* Effect.promise(() => timedAsync(cli, env)))
          return median(runs)
        })))

        // The transport warm, in this process.
        results["tezt-cloud transport (warm)"] = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          const connections = yield* Effect.forEach(
            subset,
            (h) =>
              SshClient.connect({ host: h.host, port: h.port, user }, {
                privateKey: key.privateKey,
                hostKeys: { _tag: "Insecure" }
              }),
            { concurrency: "unbounded" }
          )
          const runs: Array<number> = []
          for (let i = 0; i < repeat; i++) {
            const started = performance.now()
            yield* Effect.forEach(connections, (c) => c.run(command), { concurrency: "unbounded" })
            runs.push(performance.now() - started)
          }
          return median(runs)
        })))

        const sshCmd = (h: SshHosts.SshHost, extra: Array<string> = []) =>
          ["ssh", ...sshOptions, ...extra, "-i", keyFile, "-p", String(h.port), `${user}@${h.host}`, command].map((w) =>
            `'${w}'`
          ).join(" ")
        results["OpenSSH per command"] = median(
          Array.from(
            { length: repeat },
            () => timed(`${subset.map((h) => `${sshCmd(h)} >/dev/null &`).join("\n")}\nwait`)
          )
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
        results["OpenSSH ControlMaster (warm)"] = median(
          Array.from(
            { length: repeat },
            () => timed(`${subset.map((h) => `${sshCmd(h, cm(h))} >/dev/null &`).join("\n")}\nwait`)
          )
        )
        for (const h of subset) {
          child.spawnSync("ssh", [...cm(h), "-O", "exit", `${user}@${h.host}`], { stdio: "ignore" })
        }

        if (which("parallel-ssh")) {
          const hostsFile = path.join(work, `pssh-${n}`)
          fs.writeFileSync(hostsFile, subset.map((h) => `${user}@${h.host}:${h.port}`).join("\n") + "\n")
          results["pssh"] = median(
            Array.from(
              { length: repeat },
              () =>
                timed(
                  `parallel-ssh -h ${hostsFile} -p ${n} ${
                    sshOptions.map((o) => `-O ${o}`).filter((o) => o !== "-O -o").join(" ")
                  } -x "-i ${keyFile}" ${command} >/dev/null`
                )
            )
          )
        }
        if (which("ansible") && process.env.BENCH_NO_ANSIBLE === undefined) {
          const inventory = path.join(work, `inventory-${n}`)
          fs.writeFileSync(
            inventory,
            "[all]\n" + subset.map((h, i) =>
              `h${i} ansible_host=${h.host} ansible_port=${h.port} ansible_user=${user} ansible_ssh_private_key_file=${keyFile}`
            ).join("\n") + "\n"
          )
          results["ansible -m command"] = median(Array.from({ length: Math.min(repeat, 2) }, () =>
            timed(`ansible all -i ${inventory} -m command -a '${command}' -f ${n} >/dev/null`, {
              ANSIBLE_HOST_KEY_CHECKING: "False",
              ANSIBLE_SSH_ARGS: "-o UserKnownHostsFile=/dev/null",
              ANSIBLE_PYTHON_INTERPRETER: "auto_silent"
            })))
        }
        const reference = results["tezt-cloud agents exec (cold)"]!
        for (const [tool, ms] of Object.entries(results)) {
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
        const ratio = (peer: string, ours: string) =>
          results[peer] === undefined ? "n/a" : `${(results[peer]! / results[ours]!).toFixed(1)}×`
        targets.push({
          hosts: n,
          command,
          "warm ms": Math.round(results["tezt-cloud agents exec (warm)"]!),
          "ControlMaster ÷ warm (≥ 10)": ratio("OpenSSH ControlMaster (warm)", "tezt-cloud agents exec (warm)"),
          "ansible ÷ warm (≥ 100)": ratio("ansible -m command", "tezt-cloud agents exec (warm)"),
          "cold ms": Math.round(reference),
          "pssh ÷ cold (≥ 2)": ratio("pssh", "tezt-cloud agents exec (cold)")
        })
        process.stderr.write(`done: ${n} hosts, ${command}\n`)
      }
    }
  } finally {
    await Promise.all(hosts.map((h) => h.stop()))
    fs.rmSync(work, { recursive: true, force: true })
  }
  console.table(rows)
  console.table(targets)
}

await main()
