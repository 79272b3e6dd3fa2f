/**
 * What every sandbox-style agent is, whatever reaches it (local processes, ssh, a container): a home directory,
 * the marker its processes carry, the run's namespace, where its binaries go, its copy policy and its port range.
 * Backends build runners from it and write it into the agent's `descriptor`, so `tezt-cloud agents …` can rebuild
 * a runner from another process.
 *
 * **Details**
 *
 * Every process started for an agent carries `TEZT_CLOUD_NS=<ns>`, `TEZT_CLOUD_AGENT=<ns>/<agent>` and
 * `TEZT_CLOUD_EXEC=<id>` in its environment: they survive `setsid`, double forks and the orchestrator's death, so
 * a tree is always found (in `/proc`) and killed. Absolute paths an agent is given live under its home's `fs/`:
 * two agents sharing a machine never overwrite each other's `/tmp/tezt-runners`.
 *
 * An absolute path has one meaning for every call: the sandbox's `fs/` lies over the machine's `/`. What `copy`
 * writes to `/tmp/tezt-runners/x` is at `<home>/fs/tmp/tezt-runners/x`, and a command or argument naming
 * `/tmp/tezt-runners/x` (or `/tmp/tezt-runners`) names that file (`mapArgv`); an absolute path the sandbox does not
 * have (`/bin/sh`, `/etc/hosts`) names the machine's. Inside a shell string nothing is mapped: a script finds the
 * sandbox's files under `$TEZT_CLOUD_FS`.
 */
import * as path from "node:path"
import type { Descriptor } from "./Agent.ts"

export interface Sandbox {
  /** The agent's name. */
  readonly name: string
  /** Absolute path of its home, on the machine that runs it. */
  readonly home: string
  /** `<ns>/<agent>`: the value of `TEZT_CLOUD_AGENT` in every process of the agent. */
  readonly marker: string
  readonly namespace: string
  /** Where `copy` puts files by default (`--binaries-path`), as the agent sees it. */
  readonly binariesPath: string
  readonly checkFileConsistency: boolean
  /** The first port of its range. */
  readonly portStart: number
}

/** A sandbox from its fields; the marker is `<ns>/<agent>`. */
export const make = (fields: Omit<Sandbox, "marker">): Sandbox => ({
  ...fields,
  marker: `${fields.namespace}/${fields.name}`
})

/** Where an agent path is inside the sandbox: an absolute one under `fs/`, a relative one under its home. */
export const pathIn = (home: string, agentPath: string) =>
  // Resolved from the sandbox's own root first, as in a chroot: `..` never climbs out of it.
  path.posix.join(home, path.posix.isAbsolute(agentPath) ? "fs" : ".", path.posix.resolve("/", agentPath).slice(1))

/** Where the sandbox's own absolute paths are: `<home>/fs`. */
export const fsRoot = (home: string) => path.posix.join(home, "fs")

/**
 * `argv` as the agent means it: each absolute path (but `/`) the sandbox has under `fs/` (`exists`) becomes that
 * file's path; every other element is kept (see the module's details).
 */
export const mapArgv = (
  home: string,
  argv: ReadonlyArray<string>,
  exists: (file: string) => boolean
): Array<string> =>
  argv.map((arg) => {
    if (!mayMap(arg)) return arg
    const own = pathIn(home, arg)
    return exists(own) ? own : arg
  })

/** Whether `mapArgv` may change `arg`: an absolute path other than `/`. */
export const mayMap = (arg: string): boolean => path.posix.isAbsolute(arg) && path.posix.resolve(arg) !== "/"

/**
 * `mapArgv` in a shell, for agents reached through one: `sh -c "$argvScript" sh ARGV…` runs ARGV mapped (with
 * `$TEZT_CLOUD_FS` set, as `environment` sets it). The program replaces the shell: its pid is the shell's.
 */
export const argvScript = `n=$#; for a; do case $a in /?*) [ -e "$TEZT_CLOUD_FS$a" ] && a=$TEZT_CLOUD_FS$a;; esac; ` +
  `set -- "$@" "$a"; done; shift $n; exec "$@"`

/** The variables every process of the sandbox gets (see the module's details). */
export const environment = (sandbox: Sandbox, execId: string): Record<string, string> => ({
  HOME: sandbox.home,
  TEZT_CLOUD_FS: fsRoot(sandbox.home),
  TEZT_CLOUD_NS: sandbox.namespace,
  TEZT_CLOUD_AGENT: sandbox.marker,
  TEZT_CLOUD_EXEC: execId,
  TEZT_CLOUD_PORT_START: String(sandbox.portStart)
})

/** The agent's descriptor: the backend's name, the sandbox, and what the backend needs to reach it again. */
export const descriptor = (
  backend: string,
  sandbox: Sandbox,
  reach: Record<string, string | number> = {}
): Descriptor => ({
  ...reach,
  backend,
  agent: sandbox.name,
  home: sandbox.home,
  marker: sandbox.marker,
  namespace: sandbox.namespace,
  binariesPath: sandbox.binariesPath,
  checkFileConsistency: sandbox.checkFileConsistency ? 1 : 0,
  portStart: sandbox.portStart
})

/** The sandbox a descriptor describes. */
export const fromDescriptor = (d: Descriptor): Sandbox => ({
  name: String(d.agent),
  home: String(d.home),
  marker: String(d.marker),
  namespace: String(d.namespace),
  binariesPath: String(d.binariesPath),
  checkFileConsistency: d.checkFileConsistency === 1,
  portStart: Number(d.portStart)
})
