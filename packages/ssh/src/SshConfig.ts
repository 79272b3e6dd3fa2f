/**
 * The user's OpenSSH client config (`~/.ssh/config`, or `--ssh-config FILE`) applied to `--ssh-host`: a Host alias
 * becomes its block's `HostName`, `User`, `Port`, `IdentityFile`s, `StrictHostKeyChecking` and
 * `UserKnownHostsFile`s and `ProxyJump`, as `ssh alias` would use them. Parsed with the `ssh-config` package (first
 * value wins, `Host` patterns and `Match host/originalhost/user/localuser/all/final` as OpenSSH reads them), after
 * its `Include`s are read in as OpenSSH does (`internal/configIncludes.ts`). A `Match` block with another criterion
 * (`exec` is never run) is not applied, and says so: one warning line naming its file and line.
 *
 * **Details**
 *
 * What the command line gives (`user@`, `:port`) wins over the block, as with `ssh -l`/`-p`. Without an
 * `IdentityFile`, OpenSSH's default identities that exist (`~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`) are used.
 * Paths expand `~` and the tokens `%d` (home), `%u` (local user), `%h` (host name), `%r` (remote user), `%p`,
 * `%n` (the alias) and `%%`.
 */
import { CloudConfig, CloudError } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parse } from "ssh-config"
import * as ConfigIncludes from "./internal/configIncludes.ts"
import type * as SshClient from "./SshClient.ts"

/** How a host's key is checked: `StrictHostKeyChecking` (`ask` and `accept-new` are trust on first use here). */
export type StrictHostKeyChecking = "yes" | "no" | "accept-new"

export interface Resolved {
  readonly target: SshClient.Target
  /** The name as given (`--ssh-host`'s host), for messages and the commands they print. */
  readonly alias: string
  /** Private key files to try, in order, each with where it comes from (for messages). */
  readonly identityFiles: ReadonlyArray<{ readonly path: string; readonly origin: string }>
  /** `IdentitiesOnly yes`: the agent's keys are not offered. */
  readonly identitiesOnly: boolean
  readonly strictHostKeyChecking: StrictHostKeyChecking
  /** The user's known_hosts files, consulted before trust on first use. */
  readonly userKnownHostsFiles: ReadonlyArray<string>
  /** The config file a block of which applied, if any. */
  readonly configFile: string | undefined
  /** One line per `Match` block of the config that is not applied (its file and line, and why). */
  readonly warnings: ReadonlyArray<string>
  /** The jump hosts the host is reached through, in order (`--ssh-jump`, else `ProxyJump`), each resolved. */
  readonly jumps: ReadonlyArray<Resolved>
}

const defaultIdentities = ["id_ed25519", "id_ecdsa", "id_rsa"]

const first = (value: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof value === "string" ? value : value?.[0]

const all = (value: string | ReadonlyArray<string> | undefined): ReadonlyArray<string> =>
  value === undefined ? [] : typeof value === "string" ? [value] : value

/** Expands `~` and OpenSSH's `%` tokens in a path. */
const expand = (text: string, tokens: Record<string, string>, home: string) =>
  text.replace(/^~(?=\/|$)/, home).replace(/%(.)/g, (token, t: string) => t === "%" ? "%" : tokens[t] ?? token)

/**
 * `target` (as `--ssh-host` gave it) resolved in `file` (the user's `~/.ssh/config` when not given). A missing
 * default file is no config; a missing or unreadable `--ssh-config` is refused, naming it.
 */
export const resolve = Effect.fn("SshConfig.resolve")(function*(
  target: CloudConfig.SshHost,
  options: {
    readonly file?: string | undefined
    readonly home?: string | undefined
    readonly localUser?: string
    /** `--ssh-jump`: replaces the block's `ProxyJump` (`none`: no jump host). */
    readonly jump?: string | undefined
    /** The config's warnings are already logged (a jump host's resolution, in the same config). */
    readonly warned?: boolean | undefined
  }
): Effect.fn.Return<Resolved, CloudError.CloudError> {
  const home = options.home ?? os.homedir()
  const file = options.file ?? path.join(home, ".ssh", "config")
  const given = (what: "user" | "port") => !(target.defaults ?? []).includes(what)
  const compute = (text: string): Record<string, string | Array<string>> =>
    parse(text).compute(
      { Host: target.host, ...(given("user") ? { User: target.user } : {}) },
      { ignoreCase: true, matchExec: false }
    )
  const none = !fs.existsSync(file) && options.file === undefined
  yield* Effect.try({
    try: () => none || fs.accessSync(file, fs.constants.R_OK),
    catch: (e) =>
      CloudError.config("--ssh-config", `cannot read ${file}: ${CloudError.messageOf(e)}: give a readable ssh config`)
  })
  const { computed, warnings } = none ? { computed: {}, warnings: [] } : yield* Effect.try({
    try: () => {
      const expanded = ConfigIncludes.expand(
        file,
        home,
        (before, header) => "teztcloudprobe" in compute(`${before}\n${header}\n  TeztCloudProbe yes\n`)
      )
      return { computed: compute(expanded.text), warnings: expanded.warnings }
    },
    catch: (e) => CloudError.config("--ssh-config", `${file}: ${CloudError.messageOf(e)}: fix the config`)
  })
  if (options.warned !== true) yield* Effect.forEach(warnings, (warning) => Effect.logWarning(warning))
  const value = (key: string) => first(computed[key])
  const hostName = value("hostname")?.replace(/%h/g, target.host) ?? target.host
  const user = given("user") ? target.user : value("user") ?? target.user
  const portText = value("port")
  const port = given("port") || portText === undefined ? target.port : Number(portText)
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return yield* CloudError.config("--ssh-config", `${file}: Port ${portText} of ${target.host} is not a port`)
  }
  const localUser = options.localUser ?? process.env.USER ?? os.userInfo().username
  const tokens = { d: home, u: localUser, h: hostName, r: user, p: String(port), n: target.host }
  const configured = all(computed["identityfile"])
  const block = configured.length > 0 ? `IdentityFile of Host ${target.host} in ${file}` : undefined
  const identityFiles = block !== undefined
    ? configured.map((f) => ({ path: expand(f, tokens, home), origin: block }))
    : defaultIdentities.map((name) => path.join(home, ".ssh", name)).filter((f) => fs.existsSync(f)).map((f) => ({
      path: f,
      origin: "OpenSSH's default identity"
    }))
  const strict = value("stricthostkeychecking")?.toLowerCase()
  const knownHosts = all(computed["userknownhostsfile"]).flatMap((f) => f.split(/\s+/)).filter((f) => f !== "")
  const jumpText = options.jump ?? value("proxyjump")
  const jumpOption = options.jump === undefined ? `ProxyJump of Host ${target.host} in ${file}` : "--ssh-jump"
  // Each jump host is resolved in the same config (its own ProxyJump is not followed).
  const jumps = jumpText === undefined || jumpText.toLowerCase() === "none"
    ? []
    : yield* Effect.forEach(jumpText.split(","), (hop) =>
      CloudConfig.parseSshHost(hop.trim(), localUser).pipe(
        Effect.mapError(() =>
          CloudError.config(
            options.jump === undefined ? "--ssh-config" : "--ssh-jump",
            `${jumpOption}: "${hop}" is not [user@]host[:port], e.g. admin@bastion.example.org`
          )
        ),
        Effect.flatMap((hopTarget) => resolve(hopTarget, { ...options, localUser, jump: "none", warned: true }))
      ))
  return {
    jumps,
    warnings,
    target: { user, host: hostName, port },
    alias: target.host,
    identityFiles,
    identitiesOnly: value("identitiesonly")?.toLowerCase() === "yes",
    strictHostKeyChecking: strict === "yes" ? "yes" : strict === "no" || strict === "off" ? "no" : "accept-new",
    userKnownHostsFiles: knownHosts.length > 0
      ? knownHosts.map((f) => expand(f, tokens, home))
      : [path.join(home, ".ssh", "known_hosts"), path.join(home, ".ssh", "known_hosts2")],
    configFile: Object.keys(computed).length > 0 ? file : undefined
  } satisfies Resolved
})
