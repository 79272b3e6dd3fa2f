/**
 * The full `tezt-cloud` CLI, loaded by `bin.mjs` when the fast path of `agents exec` does not apply: runs
 * `Program` on the process's arguments and exits with its code.
 */
import * as Program from "./Program.ts"

process.exit(await Program.run(process.argv.slice(2)))
