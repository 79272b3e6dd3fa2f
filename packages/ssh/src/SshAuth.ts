/**
 * How an `--ssh-host` run gets into a host of the user's, as OpenSSH would: the keys of the user's ssh-agent
 * (`$SSH_AUTH_SOCK`) first, then the `IdentityFile`s of the host's ssh config block, then `--ssh-private-key`, then
 * the namespace's key (`~/.ssh/<ns>-tf`: made when missing unless `--ssh-private-key` is given). Once in, the run's key (`--ssh-private-key`, else the namespace's) is
 * added to the host's `~/.ssh/authorized_keys` when it is not there yet, so the run's later connections, `agents
 * exec` from another terminal and `CLOUD clean up` need nothing else; it is removed when the run ends.
 *
 * **Details**
 *
 * Private keys are read into memory only: messages name their files, never their contents. A key file that
 * cannot be used (missing, encrypted: ssh2 cannot ask for a passphrase) is skipped and named in the failure.
 * The key added to `authorized_keys` is recorded in the Ledger before it is added, so `CLOUD clean up` removes
 * it after a `kill -9`; a line that was there before the run is left alone.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import ssh2 from "ssh2"
import * as SshClient from "./SshClient.ts"
import type * as SshConfig from "./SshConfig.ts"
import * as SshKeys from "./SshKeys.ts"

export interface Plan {
  /** What to authenticate with, in order. */
  readonly credentials: ReadonlyArray<SshClient.Credential>
  /** Every source in order, those that could not be tried with why: for a failure's message. */
  readonly sources: ReadonlyArray<string>
  /** The key the run's agents are reached with afterwards (descriptors name its file). */
  readonly runKey: SshKeys.Key
  /** How to fix a failed authentication. */
  readonly hint: string
}

/** The label of the run's key among the credentials (`Connection.authenticatedWith` tells whether it got in). */
const runKeyLabel = (key: SshKeys.Key, given: boolean) =>
  `${key.path} (${given ? "--ssh-private-key" : "the namespace's key"})`

/** How many keys the agent at `socket` holds; fails with its error when it does not answer within 2 s. */
const agentKeys = (socket: string) =>
  Effect.callback<number, Error>((resume) => {
    new ssh2.OpenSSHAgent(socket).getIdentities((error, keys) =>
      resume(error ? Effect.fail(error) : Effect.succeed(keys?.length ?? 0))
    )
  }).pipe(Effect.timeoutOrElse({
    duration: "2 seconds",
    orElse: () => Effect.fail(new Error("it did not answer within 2 s"))
  }))

/** The base64 key of a public key file (`type base64 comment`), if it can be read. */
const publicBlob = (file: string): Array<string> => {
  try {
    const blob = fs.readFileSync(file, "utf8").trim().split(/\s+/)[1]
    return blob === undefined ? [] : [blob]
  } catch {
    return []
  }
}

/** A key file's credential, or why it cannot be one. */
const keyFile = (file: string, origin: string): SshClient.Credential | string => {
  const label = `${file} (${origin})`
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch {
    return `${label}: cannot be read`
  }
  const parsed = ssh2.utils.parseKey(text)
  if (parsed instanceof Error) {
    return /encrypt|passphrase/i.test(parsed.message)
      ? `${label}: encrypted (add it to your agent: ssh-add ${file})`
      : `${label}: not a private key`
  }
  return { _tag: "Key", privateKey: text, label }
}

/** The one-line command that installs the run's public key on the host, when it has a `.pub` file. */
const installCommand = (key: SshKeys.Key, resolved: SshConfig.Resolved) => {
  const { target, jumps } = resolved
  const jump = jumps.length === 0 ? "" : ` -o ProxyJump=${jumps.map((j) => SshClient.label(j.target)).join(",")}`
  return fs.existsSync(`${key.path}.pub`)
    ? `ssh-copy-id -i ${key.path}.pub${jump} -p ${target.port} ${target.user}@${target.host}`
    : undefined
}

/**
 * The credentials for `resolved`, in OpenSSH's order. `agentSocket` is `$SSH_AUTH_SOCK`; the namespace's key is
 * generated when missing unless `--ssh-private-key` is given (it is then the run's key).
 */
export const plan = Effect.fn("SshAuth.plan")(function*(resolved: SshConfig.Resolved, options: {
  readonly namespace: string
  readonly sshPrivateKey: string | undefined
  readonly keyHome?: string | undefined
  readonly agentSocket: string | undefined
}) {
  const credentials: Array<SshClient.Credential> = []
  const sources: Array<string> = []
  const use = (credential: SshClient.Credential) => {
    credentials.push(credential)
    sources.push(credential.label)
  }
  const socket = options.agentSocket
  // IdentitiesOnly: only the agent's keys that are those of the IdentityFiles (their `.pub`), as OpenSSH does.
  const only = resolved.identitiesOnly ? resolved.identityFiles.flatMap((f) => publicBlob(`${f.path}.pub`)) : undefined
  if (socket === undefined || socket === "") sources.push("no ssh-agent ($SSH_AUTH_SOCK is not set)")
  else {
    const keys = yield* Effect.result(agentKeys(socket))
    if (keys._tag === "Failure") sources.push(`your ssh-agent at ${socket}: ${keys.failure.message}`)
    else {
      const held = keys.success === 0 ? "no keys: ssh-add one" : `${keys.success} key${keys.success === 1 ? "" : "s"}`
      const which = only === undefined ? "" : ", only those of the IdentityFiles (IdentitiesOnly yes)"
      use({ _tag: "Agent", socket, label: `your ssh-agent at ${socket} (${held}${which})`, only })
    }
  }
  const given = options.sshPrivateKey !== undefined
  const runKey = yield* SshKeys.ensure(options.namespace, options.sshPrivateKey, options.keyHome)
  for (const identity of resolved.identityFiles) {
    if (identity.path === runKey.path) continue
    const found = keyFile(identity.path, identity.origin)
    if (typeof found === "string") sources.push(found)
    else use(found)
  }
  use({ _tag: "Key", privateKey: runKey.privateKey, label: runKeyLabel(runKey, given) })
  // With --ssh-private-key, the namespace's key is tried last when an earlier run made it (it is not made here).
  const namespaceKey = SshKeys.defaultPath(options.namespace, options.keyHome)
  if (given && namespaceKey !== runKey.path && fs.existsSync(namespaceKey)) {
    const found = keyFile(namespaceKey, "the namespace's key")
    if (typeof found === "string") sources.push(found)
    else use(found)
  }
  const install = installCommand(runKey, resolved)
  const hint = `fix: load a key the host accepts in your agent (ssh-add KEY), or give one with --ssh-private-key KEY` +
    (install === undefined ?
      `, or add ${runKey.path}'s public key to the host's ~/.ssh/authorized_keys` :
      `, or install ${given ? "that key" : "the namespace's key"} on the host: ${install}`)
  return { credentials, sources, runKey, hint } satisfies Plan
})

/** Whether the connection got in with the run's key (then nothing needs installing). */
export const inWithRunKey = (connection: SshClient.Connection, auth: Plan) => {
  const used = connection.authenticatedWith()
  return used?._tag === "Key" && used.privateKey === auth.runKey.privateKey
}

/** The run's `authorized_keys` line: its public key, with a comment naming tezt-cloud and the namespace. */
export const authorizedLine = (key: SshKeys.Key) => key.publicKey

/** A shell line printing `present` when the host's `~/.ssh/authorized_keys` authorizes the key of `line`. */
export const checkScript = (line: string) => {
  const blob = line.split(" ")[1] ?? line
  return `f="$HOME/.ssh/authorized_keys"; [ -f "$f" ] && grep -qF -- ${
    SshClient.quote(` ${blob}`)
  } "$f" && echo present; true`
}

/** A shell line adding `line` to the host's `~/.ssh/authorized_keys` (made mode 0600 in a 0700 `~/.ssh`). */
export const addScript = (line: string) =>
  `umask 077; mkdir -p "$HOME/.ssh" && printf '%s\\n' ${SshClient.quote(line)} >> "$HOME/.ssh/authorized_keys"`

/** A shell line removing exactly `line` from the host's `~/.ssh/authorized_keys`, in place (same file, mode). */
export const removeScript = (line: string) =>
  `f="$HOME/.ssh/authorized_keys"; [ -f "$f" ] || exit 0; t=$(mktemp "$f.XXXXXX") || exit 1; ` +
  `{ grep -vxF -- ${SshClient.quote(line)} "$f"; [ $? -le 1 ]; } > "$t" && cat "$t" > "$f"; s=$?; rm -f "$t"; exit $s`
