/**
 * Shell words for remote command lines: POSIX quoting, and the kill-by-marker script that finds a whole process
 * tree in /proc by an environment variable, even after `setsid` or a lost connection.
 */

/** POSIX single-quoting: the word reaches the remote program unchanged, whatever it contains. */
export const quote = (word: string): string => `'${word.replaceAll("'", `'\\''`)}'`

/** An argv as one shell command line. */
export const commandLine = (argv: ReadonlyArray<string>): string => argv.map(quote).join(" ")

/**
 * `cd DIR && PATH=PREFIX:"$PATH" exec env VARS…`: a shell line's start that puts the rest (an argv) in `cwd`
 * with the environment `env` added, and `pathPrefix` (if any) in front of PATH.
 */
export const environmentPrefix = (command: {
  readonly cwd: string
  readonly env: Readonly<Record<string, string>>
  readonly pathPrefix?: string | undefined
}): string => {
  const assignments = Object.entries(command.env).map(([k, v]) => quote(`${k}=${v}`)).join(" ")
  const search = command.pathPrefix === undefined ? "" : `PATH=${quote(command.pathPrefix)}:"$PATH" `
  return `cd ${quote(command.cwd)} && ${search}exec env ${assignments}`
}

/**
 * A script that kills every process whose environment has one of the `KEY=VALUE` markers, with its process
 * group: SIGTERM, then SIGKILL for what is left after `graceSeconds`.
 */
export const killScript = (markers: string | ReadonlyArray<string>, graceSeconds: number) => {
  const patterns = (typeof markers === "string" ? [markers] : markers).map((m) => `-e ${quote(m)}`).join(" ")
  return [
    `pids() { grep -lzxF ${patterns} /proc/[0-9]*/environ 2>/dev/null | sed 's#^/proc/\\([0-9]*\\)/environ$#\\1#'; }`,
    `p=$(pids); [ -z "$p" ] && exit 0`,
    `for x in $p; do kill -TERM -"$x" "$x" 2>/dev/null; done`,
    `i=0; while [ "$i" -lt ${
      Math.max(1, Math.round(graceSeconds * 10))
    } ]; do p=$(pids); [ -z "$p" ] && exit 0; sleep 0.1; i=$((i+1)); done`,
    `for x in $p; do kill -KILL -"$x" "$x" 2>/dev/null; done; exit 0`
  ].join("\n")
}
